"""The pipeline's steps: small, check-then-act, resumable, dry-run aware. One step a module, in pipeline
order (runs/pipeline.py); `optional/` holds the steps a run option switches on, `shared/` what several
steps use. A step never builds a Graph path: it calls `graph/resources/`."""
