"""The service's engine without HTTP: the per-series cache (hits, partial hits, TTL, size bound)
and the request parser's messages."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve tests need the 'serve' extra: pip install -e '.[serve]'")

import ndiv  # noqa: E402
from ndiv.models import MLP  # noqa: E402
from ndiv.serve import payload  # noqa: E402
from ndiv.serve.app import Metrics  # noqa: E402
from ndiv.serve.engine import Engine, RequestFailed, SeriesCache  # noqa: E402


def series(uid, n=24, off=0.0):
    t = np.arange(n)
    return {"unique_id": [uid] * n, "ds": list(range(n)), "y": [float(v) for v in 50 + 5 * np.sin(t / 2 + off)]}


def concat(*tables):
    return {k: sum((t[k] for t in tables), []) for k in tables[0]}


@pytest.fixture(scope="module")
def fc():
    return ndiv.Forecaster([MLP(h=4, input_size=8, hidden_size=8, num_layers=1, max_steps=2,
                                scaler_type="standard")], freq=1).fit(concat(series("a"), series("b", off=1)))


def val(metrics, name) -> float:
    return metrics.registry.get_sample_value(name)


def run(engine, bodies):
    async def go():
        engine.start()
        try:
            return [await engine.forecast(payload.parse(b, 10_000)) for b in bodies]
        finally:
            await engine.stop()
    return asyncio.run(go())


def same(cols, table, rtol=0.0):
    """cols (the engine's) == table (predict's); rtol > 0 where the engine predicted the series in
    another company than predict did (BLAS rounding may then differ in the last bit)."""
    assert cols["unique_id"] == np.asarray(table["unique_id"]).tolist()
    got = np.asarray(cols["MLP"], np.float32)
    if rtol == 0:
        np.testing.assert_array_equal(got, table["MLP"])
    else:
        np.testing.assert_allclose(got, table["MLP"], rtol=rtol, atol=0)


def test_cache_answers_repeats_and_partial_overlaps_as_predict_does(fc):
    m = Metrics()
    engine = Engine(fc, cache_size=10, metrics=m)
    first = concat(series("x", off=0.1), series("y", off=0.2))
    second = concat(series("z", off=0.3), series("y", off=0.2))      # y cached, z new
    out = run(engine, [first, first, second])
    same(out[0], fc.predict(df=first))
    assert out[1] == out[0]
    same(out[2], fc.predict(df=second), rtol=1e-6)                    # z alone, y from the cache
    assert val(m, "ndiv_cache_hits_total") == 3       # 0 + 2 + 1 (y)
    assert val(m, "ndiv_cache_misses_total") == 3     # 2 + 0 + 1 (z)
    assert val(m, "ndiv_batch_size_sum") == 2         # two predict calls: first, then z alone


def test_cache_changed_values_miss_and_errors_are_not_cached(fc):
    m = Metrics()
    engine = Engine(fc, cache_size=10, metrics=m)
    changed = series("x", off=0.1)
    changed["y"][-1] += 1.0
    out = run(engine, [series("x", off=0.1), changed])
    assert out[0]["MLP"] != out[1]["MLP"] and val(m, "ndiv_cache_hits_total") == 0
    bad = series("x")
    bad["y"][2] = None
    with pytest.raises(RequestFailed, match="'y'"):
        run(engine, [bad])
    assert len(engine.cache) == 2


def test_series_cache_bounds_size_and_age():
    c = SeriesCache(size=2, ttl_s=0.05)
    for k in "abc":
        c.put(k, k)
    assert len(c) == 2 and c.get("a") is None and c.get("c") == "c"
    time.sleep(0.06)
    assert c.get("c") is None


@pytest.mark.parametrize("body, message", [
    ([1], "must be a JSON object"),
    ({"rows": [{"unique_id": "a", "ds": 1, "y": 1.0}, {"unique_id": "a", "ds": 2}]}, r"rows\[1\] has the keys"),
    ({"rows": [], "level": [80]}, "'rows' is empty"),
    ({"unique_id": ["a", "a"], "ds": [1], "y": [1.0, 2.0]}, "different lengths"),
    ({"unique_id": "a", "ds": [1], "y": [1.0]}, "column 'unique_id' is a JSON str"),
    ({"rows": [{"unique_id": "a", "ds": 1, "y": 1.0}], "extra": 1}, r"unknown keys \['extra'\]"),
])
def test_parse_names_what_is_wrong(body, message):
    with pytest.raises(payload.PayloadError, match=message):
        payload.parse(body, 100)


def test_parse_refuses_too_many_rows():
    with pytest.raises(payload.PayloadTooLarge, match="at most 3"):
        payload.parse(series("a", n=4), 3)


def test_concurrent_requests_merge_and_without_batching_match_predict_bit_for_bit(fc):
    bodies = [series(f"s{i}", n=20 + i, off=0.4 * i) for i in range(6)]
    wants = [fc.predict(df=b) for b in bodies]

    async def go(engine):
        engine.start()
        try:
            return await asyncio.gather(*(engine.forecast(payload.parse(b, 10_000)) for b in bodies))
        finally:
            await engine.stop()

    m = Metrics()
    merged = asyncio.run(go(Engine(fc, max_batch=8, max_wait_s=0.05, metrics=m)))
    assert val(m, "ndiv_batch_size_sum") == 6 and val(m, "ndiv_batch_size_count") < 6
    for got, want in zip(merged, wants):
        same(got, want, rtol=1e-6)
    alone = asyncio.run(go(Engine(fc, max_batch=1)))
    for got, want in zip(alone, wants):
        same(got, want)


def test_a_bad_request_in_a_merged_batch_fails_alone(fc):
    bad = series("bad")
    bad["y"][-1] = None

    async def go():
        engine = Engine(fc, max_batch=8, max_wait_s=0.05)
        engine.start()
        try:
            return await asyncio.gather(*(engine.forecast(payload.parse(b, 10_000)) for b in
                                          (series("ok"), bad, series(7))), return_exceptions=True)
        finally:
            await engine.stop()

    ok, failed, ok_int = asyncio.run(go())
    same(ok, fc.predict(df=series("ok")))
    same(ok_int, fc.predict(df=series(7)))
    assert isinstance(failed, RequestFailed) and "'bad'" in str(failed)   # the caller's own id


def test_models_that_mix_series_are_never_merged_nor_cached():
    from ndiv.models import MLP as _MLP
    local = ndiv.Forecaster([_MLP(h=2, input_size=4)], freq=1, local_scaler_type="standard")
    static = ndiv.Forecaster([_MLP(h=2, input_size=4, stat_exog_list=["s"])], freq=1)
    for fc in (local, static):
        engine = Engine(fc, max_batch=16, cache_size=100)
        assert not engine.mergeable and engine.max_batch == 1 and engine.cache is None


async def _asgi(app, method, path, body=b""):
    """One HTTP request straight into the ASGI app -> (status, JSON body or text)."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"content-type", b"application/json")], "http_version": "1.1", "scheme": "http",
             "server": ("test", 80), "client": ("test", 1), "root_path": ""}
    inbox = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], raw.decode()


def test_a_bug_gets_a_generic_500_is_logged_and_counted_and_ready_is_503_before_warming(tmp_path, caplog):
    import json
    from ndiv.serve.app import ServeConfig, create_app
    app = create_app(ServeConfig(path=str(tmp_path)))     # lifespan not run: no model, no engine

    async def go():
        return (await _asgi(app, "GET", "/ready"),
                await _asgi(app, "POST", "/predict", json.dumps(series("a")).encode()),
                await _asgi(app, "GET", "/metrics"))

    with caplog.at_level("ERROR", logger="uvicorn.error"):
        (ready, _), (status, body), (_, metrics) = asyncio.run(go())
    assert ready == 503
    assert status == 500 and json.loads(body) == {"error": "internal error; the server log has the details"}
    assert "Traceback" not in body and any(r.exc_info for r in caplog.records)
    assert 'ndiv_errors_total{kind="internal"} 1.0' in metrics
    assert 'ndiv_requests_total{route="/predict",status="500"} 1.0' in metrics


def test_serve_refuses_a_missing_folder_and_bad_options(tmp_path):
    from ndiv import cli
    with pytest.raises(SystemExit, match="is not a folder"):
        cli.main(["serve", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="--max-batch must be an integer >= 1"):
        cli.main(["serve", str(tmp_path), "--max-batch", "0"])
