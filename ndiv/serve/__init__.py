"""`ndiv serve`: an HTTP JSON service for a saved Forecaster folder (the optional extra
`pip install 'ndiv[serve]'`: Starlette, uvicorn, prometheus_client).

    ndiv serve ./my_model --port 8000 --max-batch 32 --max-wait-ms 5 --cache-size 10000
    curl -s localhost:8000/predict -d '{"rows": [{"unique_id": "a", "ds": 1, "y": 3.0}, ...]}'

The service calls Forecaster.load and Forecaster.predict only; see ndiv/serve/app.py for the
routes and ndiv/serve/engine.py for micro-batching and the cache. `import ndiv` never imports
this package.
"""
from __future__ import annotations

import inspect
import os
import signal
import sys


def serve(path: str, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, max_batch: int = 32,
          max_wait_ms: float = 5.0, cache_size: int = 0, cache_ttl: float = 300.0, max_rows: int = 100_000,
          max_body_bytes: int = 16 * 2 ** 20, log_level: str = "info") -> None:
    """Run the service until SIGINT/SIGTERM (uvicorn finishes the requests in flight, then
    returns). With workers > 1 each worker process loads the model and has its own batcher,
    cache and metrics (a scrape of /metrics sees the worker that answered it)."""
    try:
        import uvicorn

        from ndiv.serve.app import CONFIG_ENV, ServeConfig
    except ImportError as e:
        raise SystemExit(f"ndiv serve needs the 'serve' extra ({e.name} is missing): "
                         "pip install 'ndiv[serve]'") from None
    for name, value, low in (("--port", port, 0), ("--workers", workers, 1), ("--max-batch", max_batch, 1),
                             ("--max-rows", max_rows, 1), ("--cache-size", cache_size, 0)):
        if value < low:
            raise SystemExit(f"ndiv serve: {name} must be an integer >= {low}, got {value}")
    for name, value in (("--max-wait-ms", max_wait_ms), ("--cache-ttl", cache_ttl)):
        if not value >= 0:
            raise SystemExit(f"ndiv serve: {name} must be a number >= 0, got {value}")
    if not os.path.isdir(path):
        raise SystemExit(f"ndiv serve: {path!r} is not a folder; pass the folder that Forecaster.save() wrote")
    config = ServeConfig(path=os.path.abspath(path), max_batch=max_batch, max_wait_ms=max_wait_ms,
                         cache_size=cache_size, cache_ttl=cache_ttl, max_rows=max_rows,
                         max_body_bytes=max_body_bytes)
    os.environ[CONFIG_ENV] = config.to_env()   # read by each worker's app factory
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler
    # it found: this one turns that into exit status 0, as container runtimes expect.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    extra = {}
    if workers > 1 and "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:
        extra["timeout_worker_healthcheck"] = 60   # a worker importing ndiv on a busy machine can take >5 s
    uvicorn.run("ndiv.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, timeout_graceful_shutdown=30, **extra)


def _exit_cleanly(signum, frame) -> None:
    sys.exit(0)
