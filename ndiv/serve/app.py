"""The Starlette application of `ndiv serve`: routes, error answers and Prometheus metrics.

    POST /predict   forecast rows (see ndiv/serve/payload.py for the body)
    GET  /health    200 while the process runs
    GET  /ready     200 once the model is loaded and warmed (Numba compiled), else 503
    GET  /metrics   Prometheus text: requests by route and status, errors by kind, latency,
                    batch sizes, cache hits and misses

Errors are JSON {"error": message}: 400 malformed JSON, 413 a body or row count over the
limits, 422 a request the library rejects (its ValueError/TypeError message as it is), 500 a
bug (logged with its traceback; the client gets a generic message).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ndiv.serve import payload
from ndiv.serve.engine import Engine, RequestFailed

log = logging.getLogger("uvicorn.error")   # uvicorn configures its handlers

CONFIG_ENV = "NDIV_SERVE_CONFIG"


@dataclass
class ServeConfig:
    """What `ndiv serve` was asked for (passed to each worker process as JSON in $NDIV_SERVE_CONFIG)."""
    path: str
    max_batch: int = 32
    max_wait_ms: float = 5.0
    cache_size: int = 0
    cache_ttl: float = 300.0
    max_rows: int = 100_000
    max_body_bytes: int = 16 * 2 ** 20

    def to_env(self) -> str:
        return json.dumps(asdict(self))


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("ndiv_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.errors = Counter("ndiv_errors", "error answers by kind", ["kind"], registry=r)
        self.latency = Histogram("ndiv_request_latency_seconds", "time from request to answer", ["route"],
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                 registry=r)
        self.batch_size = Histogram("ndiv_batch_size", "requests merged into one predict call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.cache_hits = Counter("ndiv_cache_hits", "series answered from the cache", registry=r)
        self.cache_misses = Counter("ndiv_cache_misses", "series not in the cache", registry=r)
        self.ready = Gauge("ndiv_ready", "1 once the model is loaded and warmed", registry=r)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (TooLarge) as soon as it exceeds limit bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body has {declared} bytes; this service accepts at most {limit}")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise TooLarge(f"the body exceeds {limit} bytes, the most this service accepts")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ServeConfig) -> Starlette:
    """The application for one saved model folder. The model is loaded during startup (a
    folder that does not load stops the server with the library's message); warming (one
    predict, which compiles the Numba kernels) runs in the background and /ready says when it
    is done."""
    import ndiv

    metrics = Metrics()
    state: dict = {"ready": False, "engine": None, "warm_error": None}

    async def warm(fc) -> None:
        try:
            await asyncio.to_thread(_warm, fc)
        except Exception as e:  # noqa: BLE001 - the service stays unready and says why
            log.exception("warming the model failed")
            state["warm_error"] = f"warming the model failed: {type(e).__name__}: {e}"
            return
        state["ready"] = True
        metrics.ready.set(1)
        log.info("ndiv serve: model warmed, ready")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        fc = ndiv.Forecaster.load(config.path)
        engine = Engine(fc, max_batch=config.max_batch, max_wait_s=config.max_wait_ms / 1000,
                        cache_size=config.cache_size, cache_ttl_s=config.cache_ttl, metrics=metrics,
                        model_tag=os.path.abspath(config.path))
        if not engine.mergeable and config.max_batch > 1:
            log.info("ndiv serve: the model mixes series (multivariate, static features or a local "
                     "scaler): each request runs on its own, no micro-batching and no cache")
        engine.start()
        state["engine"] = engine
        warming = asyncio.get_running_loop().create_task(warm(fc))
        log.info("ndiv serve: loaded %s (%s)", config.path, ", ".join(str(m) for m in fc.models))
        try:
            yield
        finally:
            warming.cancel()
            await engine.stop()

    def instrumented(route: str):
        def wrap(handler):
            async def endpoint(request: Request) -> Response:
                t0 = time.perf_counter()
                try:
                    response = await handler(request)
                except Exception:  # noqa: BLE001 - a bug: logged, never shown to the client
                    log.exception("unexpected error in %s", route)
                    metrics.errors.labels("internal").inc()
                    response = _error(500, "internal error; the server log has the details")
                metrics.requests.labels(route, str(response.status_code)).inc()
                metrics.latency.labels(route).observe(time.perf_counter() - t0)
                return response
            return endpoint
        return wrap

    @instrumented("/predict")
    async def predict(request: Request) -> Response:
        engine = state["engine"]
        engine.arriving += 1
        try:
            req = await _parse(request)
        finally:
            engine.arriving -= 1
        if isinstance(req, Response):
            return req
        try:
            cols = await engine.forecast(req)
        except RequestFailed as e:
            metrics.errors.labels("invalid_request").inc()
            return _error(422, str(e))
        return JSONResponse({"forecast": payload.to_rows(cols)})

    async def _parse(request: Request):
        """The request's PredictRequest, or the error Response."""
        try:
            raw = await _read_body(request, config.max_body_bytes)
        except TooLarge as e:
            metrics.errors.labels("too_large").inc()
            return _error(413, str(e))
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            metrics.errors.labels("malformed_json").inc()
            return _error(400, f"the body is not valid JSON: {e}")
        try:
            req = payload.parse(body, config.max_rows)
        except payload.PayloadTooLarge as e:
            metrics.errors.labels("too_large").inc()
            return _error(413, str(e))
        except payload.PayloadError as e:
            metrics.errors.labels("invalid_request").inc()
            return _error(422, str(e))
        return req

    @instrumented("/health")
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    @instrumented("/ready")
    async def ready(request: Request) -> Response:
        if state["ready"]:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "warming" if state["warm_error"] is None else "failed",
                             "error": state["warm_error"] or "the model is warming up (compiling kernels)"},
                            status_code=503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
              Route("/ready", ready, methods=["GET"]), Route("/metrics", metrics_endpoint, methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    return app


def _warm(fc) -> None:
    """One predict, so that the first request does not pay for the Numba compilation: on the
    saved training data, else on a synthetic series long enough for every model."""
    try:
        fc.predict()
        return
    except ValueError:
        pass
    import numpy as np
    n = max(m.input_size for m in fc.models) + 2 * fc.h
    if isinstance(fc.freq, (int, np.integer)):
        ds = list(range(n))
        fds = list(range(n, n + fc.h))
    else:
        import pandas as pd  # dates of a pandas frequency need pandas
        dates = pd.date_range("2000-01-01", periods=n + fc.h, freq=fc.freq)
        ds, fds = dates[:n].to_numpy(), dates[n:].to_numpy()
    exog = fc._exog_cols()
    df = {"unique_id": ["warm"] * n, "ds": ds, "y": np.sin(np.arange(n) / 3.0) + 2.0,
          **{c: np.zeros(n) for c in exog}}
    futr_cols = sorted({c for m in fc.models for c in m.futr_exog_list})
    futr = {"unique_id": ["warm"] * fc.h, "ds": fds, **{c: np.zeros(fc.h) for c in futr_cols}} if futr_cols else None
    fc.predict(df=df, futr_df=futr)


def app_from_env() -> Starlette:
    """uvicorn's factory: the app for the ServeConfig in $NDIV_SERVE_CONFIG."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"${CONFIG_ENV} is not set; start the service with `ndiv serve PATH`")
    return create_app(ServeConfig(**json.loads(raw)))
