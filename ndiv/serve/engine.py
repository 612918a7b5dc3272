"""Micro-batching and the per-series cache in front of one Forecaster.

Requests wait in a queue; one loop takes the first, then whatever else is queued or arrives
within `max_wait_s` (at most `max_batch` requests; it waits only while other requests are
still being read, so a lone client never waits), merges the requests that ask for the same columns
and level into one Forecaster.predict over the union of their series, and splits the forecast
back. Series ids are made unique per request ("<request>:<rank>") and mapped back, so every
request gets the rows, ids and order that its own predict call would give. The predict runs in
a worker thread: the event loop keeps answering /health and /metrics meanwhile.

Merging is only done where a series' forecast depends on that series alone: univariate models
without static features and a Forecaster without a local scaler (a multivariate model mixes
series; static features and local scalers are looked up by the fitted series' ids). Otherwise
each request runs on its own.

A merged (or cached) forecast equals the request's own predict call within float32 rounding,
not always bit for bit: BLAS may round a row differently when the matrix has more rows (with
OpenBLAS here, a one-row product goes to GEMV and large layers, e.g. NHITS' 512 units, are
blocked by row count; 1 ulp measured). `max_batch=1` and `cache_size=0` give the bits of the
request's own call.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import numpy as np

from ndiv.serve.payload import PredictRequest, series_keys, take, to_columns

log = logging.getLogger("uvicorn.error")   # uvicorn configures its handlers


class RequestFailed(Exception):
    """Wraps the library's ValueError/TypeError for one request (answered with 422)."""


def can_merge(fc) -> bool:
    """Whether series of different requests can share one predict call of fc."""
    if fc.local_scaler_type is not None:
        return False
    return not any(m.MULTIVARIATE or m.stat_exog_list for m in fc.models)


class SeriesCache:
    """Forecast rows per series content hash, least recently used out first, each kept ttl_s.
    Used from the event loop only (no lock)."""

    def __init__(self, size: int, ttl_s: float):
        self.size, self.ttl_s = size, ttl_s
        self._d: OrderedDict = OrderedDict()

    def get(self, key: str):
        hit = self._d.get(key)
        if hit is None:
            return None
        born, value = hit
        if time.monotonic() - born > self.ttl_s:
            del self._d[key]
            return None
        self._d.move_to_end(key)
        return value

    def put(self, key: str, value) -> None:
        self._d[key] = (time.monotonic(), value)
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


class Engine:
    """Forecasts for PredictRequests through one Forecaster, batched and cached.

    Args:
        fc: a fitted (loaded) ndiv.Forecaster.
        max_batch: most requests merged into one predict call (1: no merging).
        max_wait_s: how long the first request of a batch waits for others.
        cache_size: most series kept in the cache (0: no cache); cache_ttl_s: their lifetime.
        metrics: the service's Metrics (batch sizes, cache hits and misses).
    """

    def __init__(self, fc, max_batch: int = 32, max_wait_s: float = 0.005, cache_size: int = 0,
                 cache_ttl_s: float = 300.0, metrics=None, model_tag: str = ""):
        self.fc = fc
        self.mergeable = can_merge(fc)
        self.max_batch = max_batch if self.mergeable else 1
        self.max_wait_s = max_wait_s
        self.cache = SeriesCache(cache_size, cache_ttl_s) if cache_size > 0 and self.mergeable else None
        self.metrics = metrics
        self.model_tag = model_tag
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self.arriving = 0   # requests being read and parsed (the app counts them): worth waiting for

    # -- lifecycle (inside the event loop) ---------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="ndiv-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # -- the request path --------------------------------------------------------------------
    async def forecast(self, req: PredictRequest) -> dict[str, list]:
        """The forecast of req as JSON-ready columns. Raises RequestFailed for input the library
        rejects; anything else is a bug and propagates."""
        keys = None
        if self.cache is not None and req.uids is not None:
            keys = series_keys(req, self.model_tag)
            cached = [self.cache.get(k) for k in keys]
            n_hit = sum(c is not None for c in cached)
            if self.metrics is not None:
                self.metrics.cache_hits.inc(n_hit)
                self.metrics.cache_misses.inc(len(keys) - n_hit)
            if n_hit == len(keys):
                return _concat(cached)
            if n_hit:
                missing = [s for s, c in enumerate(cached) if c is None]
                out = await self._submit(_subset(req, missing))
                fresh = _split_series(out, len(missing))
                for s, part in zip(missing, fresh):
                    cached[s] = part
                    self.cache.put(keys[s], part)
                return _concat(cached)
        out = await self._submit(req)
        if keys is not None:
            for k, part in zip(keys, _split_series(out, len(keys))):
                self.cache.put(k, part)
        return out

    async def _submit(self, req: PredictRequest) -> dict[str, list]:
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((req, fut))
        return await fut

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - loop.time()
                if left <= 0 or self.arriving == 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
            batch = [(r, f) for r, f in batch if not f.done()]   # clients that went away
            groups: dict = {}
            for r, f in batch:
                key = r.key if (r.uids is not None and self.max_batch > 1) else id(r)
                groups.setdefault(key, []).append((r, f))
            for group in groups.values():
                if self.metrics is not None:
                    self.metrics.batch_size.observe(len(group))
                try:
                    results = await asyncio.to_thread(self._predict_group, [r for r, _ in group])
                except Exception as e:  # noqa: BLE001 - delivered to each waiting request
                    results = [e] * len(group)
                for (_, f), res in zip(group, results):
                    if f.done():
                        continue
                    if isinstance(res, BaseException):
                        f.set_exception(res)
                    else:
                        f.set_result(res)

    # -- in the worker thread ----------------------------------------------------------------
    def _predict_one(self, req: PredictRequest):
        try:
            table = self.fc.predict(df=req.df, futr_df=req.futr, level=req.level)
        except (ValueError, TypeError) as e:
            return RequestFailed(str(e))
        except Exception as e:  # noqa: BLE001 - a bug: the app logs it and answers 500
            return e
        return to_columns(table)

    def _predict_group(self, reqs: list[PredictRequest]) -> list:
        """One predict over the union of reqs' series, split back per request; when it fails
        (one bad request), each request runs alone so that each gets its own answer."""
        if len(reqs) == 1:
            return [self._predict_one(reqs[0])]
        df, futr = _merge(reqs)
        try:
            table = self.fc.predict(df=df, futr_df=futr, level=reqs[0].level)
        except Exception:  # noqa: BLE001 - rerun alone: the library names the culprit in its ids
            return [self._predict_one(r) for r in reqs]
        return _unmerge(to_columns(table), reqs)


def _tag(k: int, s: int) -> str:
    return f"{k:06d}:{s:08d}"


def _merge(reqs: list[PredictRequest]) -> tuple[dict, dict | None]:
    """reqs -> one df (and futr) whose ids are "<request>:<rank>": unique across requests and
    sorted as each request's own ids sort."""
    df = {c: [] for c in reqs[0].df}
    futr = None if reqs[0].futr is None else {c: [] for c in reqs[0].futr}
    for k, r in enumerate(reqs):
        for c in df:
            df[c].extend(r.df[c] if c != "unique_id" else [_tag(k, s) for s in r.codes.tolist()])
        if futr is not None:
            for c in futr:
                if c != "unique_id":
                    futr[c].extend(r.futr[c])
                else:
                    futr[c].extend(_tag(k, s) if s >= 0 else f"{k:06d}:?{v}"
                                   for s, v in zip(r.futr_codes.tolist(), r.futr[c]))
    return df, futr


def _unmerge(cols: dict[str, list], reqs: list[PredictRequest]) -> list[dict]:
    """Split a merged forecast back per request, with each request's own ids."""
    ids = cols["unique_id"]
    outs = [{c: [] for c in cols} for _ in reqs]
    for i, tag in enumerate(ids):
        k, s = int(tag[:6]), int(tag[7:])
        o = outs[k]
        for c, v in cols.items():
            o[c].append(reqs[k].uids[s] if c == "unique_id" else v[i])
    return outs


def _subset(req: PredictRequest, series: list[int]) -> PredictRequest:
    """req restricted to some of its series (indices into req.uids)."""
    keep = np.isin(req.codes, series)
    rows = np.flatnonzero(keep)
    remap = np.full(len(req.uids), -1, dtype=np.int64)
    remap[series] = np.arange(len(series))
    sub = PredictRequest(df=take(req.df, rows), futr=None, level=req.level,
                         uids=[req.uids[s] for s in series], codes=remap[req.codes[rows]], key=req.key)
    if req.futr is not None:
        frows = np.flatnonzero(np.isin(req.futr_codes, series))
        sub.futr = take(req.futr, frows)
        sub.futr_codes = remap[req.futr_codes[frows]]
    return sub


def _split_series(cols: dict[str, list], n_series: int) -> list[dict]:
    """A forecast of n_series series (h rows each, series-major) -> one table per series."""
    n = len(cols["unique_id"])
    per = n // n_series if n_series else 0
    return [{c: v[s * per:(s + 1) * per] for c, v in cols.items()} for s in range(n_series)]


def _concat(parts: list[dict]) -> dict:
    out = {c: [] for c in parts[0]}
    for p in parts:
        for c, v in p.items():
            out[c].extend(v)
    return out
