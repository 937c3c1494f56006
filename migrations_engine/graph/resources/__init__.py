"""What the console knows of each Microsoft Graph resource it uses: the paths, the queries, the bodies it
sends and the maths over what Graph answers (policy scope, grant strength, normalised comparison).

One module per resource. Steps, the census and the drift watch call these; no module outside
`migrations_engine/graph/` builds a Graph path (tests/test_layout.py checks it). A new Graph call goes in
the module of its resource here, or in a new one.
"""
