"""Two Forecasters in one process: one fits in a thread while another thread predicts with the
other. Both results equal the sequential ones bitwise (grad mode, the memory pool and the
random generators must not leak between threads)."""
from __future__ import annotations

import sys
import threading

import numpy as np

import ndiv
from ndiv.models import LSTM, MLP


def series(ids, n=48, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.concatenate([10.0 * (i + 1) + np.sin(t / 3 + i) + rng.normal(0, 0.1, n) for i in range(len(ids))])
    return {"unique_id": np.repeat(ids, n), "ds": np.tile(t, len(ids)), "y": y}


def make():
    return ndiv.Forecaster([MLP(h=4, input_size=8, hidden_size=16, max_steps=30, scaler_type="standard",
                                random_seed=3, enable_progress_bar=False),
                            LSTM(h=4, input_size=8, encoder_hidden_size=8, decoder_hidden_size=8, max_steps=10,
                                 random_seed=3, enable_progress_bar=False)], freq=1)


def test_fit_in_one_thread_while_another_predicts():
    train, serve_data = series(["a", "b", "c"]), series(["x", "y"], seed=1)
    seq = make()
    seq.fit(train)
    expected_fit = seq.predict()
    server = make()
    server.fit(serve_data)
    expected_serve = server.predict()

    fitted, served, errors = {}, [], []
    done = threading.Event()

    def fit():
        try:
            fc = make()
            fc.fit(train)
            fitted["forecast"] = fc.predict()
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            done.set()

    def serve():
        try:
            while not done.is_set():
                served.append(server.predict())
        except BaseException as e:
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=serve), threading.Thread(target=fit)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert served, "the serving thread never predicted"
    for col in ("MLP", "LSTM"):
        np.testing.assert_array_equal(np.asarray(fitted["forecast"][col]), np.asarray(expected_fit[col]))
        for out in served:
            np.testing.assert_array_equal(np.asarray(out[col]), np.asarray(expected_serve[col]))
