"""A faithful Microsoft Graph + Microsoft login simulator for tests and demos.

Production code never imports this package: it is started as a separate HTTPS server
(``python -m graph_sim serve ...``) or by the test helpers in :mod:`graph_sim.testing`.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
