"""gunicorn's settings in the container (`gunicorn --config python:msp_console.gunicorn_conf`): its own
log lines (start, worker exits, timeouts) go through the console's logging, so they are JSON lines too
when LOG_FORMAT=json and one log collector reads one format. No access log: the proxy in front keeps
one, and the health check would fill it."""

from msp_console import settings as _console

logconfig_dict = {
    **_console.LOGGING,
    "loggers": {
        **_console.LOGGING["loggers"],
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}

# Threads in each worker (3 workers × 4 threads): a long download (an audit export or census CSV streamed
# from the console) holds one thread, not a whole worker, and gunicorn's timeout watches the worker's
# heartbeat, not how long one request streams.
worker_class = "gthread"
threads = 4
