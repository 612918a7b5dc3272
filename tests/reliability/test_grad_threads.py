"""Grad mode is per thread: one thread's `no_grad()` (a predict) never stops another's recording."""
from __future__ import annotations

import sys
import threading

import numpy as np

import ndiv
import ndiv.nn as nn
import ndiv.optim as optim

STEPS = 40


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    return ndiv.tensor(x), ndiv.tensor(x[:, :1] * 2 - x[:, 1:2])


def _model():
    ndiv.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _train(model, x, y):
    """STEPS SGD steps; the gradients of every step, in parameter order."""
    opt = optim.SGD(model.parameters(), lr=0.05)
    grads = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        grads.append([p.grad.copy() for p in model.parameters()])
        opt.step()
    return grads


def test_no_grad_in_one_thread_does_not_stop_training_in_another():
    x, y = _data()
    expected = _train(_model(), x, y)

    model, server = _model(), _model()
    done = threading.Event()
    result, errors, n_predictions = {}, [], [0]

    def predict():
        try:
            while not done.is_set():
                with ndiv.no_grad():  # toggles the switch as often as it can
                    out = server(x)
                assert not out.requires_grad
                n_predictions[0] += 1
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    def fit():
        try:
            result["grads"] = _train(model, x, y)
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between nearly every op
    try:
        threads = [threading.Thread(target=predict), threading.Thread(target=fit)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert n_predictions[0] > 0
    for step, (got, want) in enumerate(zip(result["grads"], expected)):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w, err_msg=f"step {step}")


def test_a_new_thread_records_even_when_the_caller_is_in_no_grad():
    seen = {}

    def worker():
        seen["enabled"] = ndiv.is_grad_enabled()
        w = ndiv.tensor([1.0, 2.0], requires_grad=True)
        seen["requires_grad"] = (w * 2).requires_grad

    with ndiv.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert not ndiv.is_grad_enabled()
    assert seen == {"enabled": True, "requires_grad": True}
    assert ndiv.is_grad_enabled()


def test_two_threads_training_with_the_memory_pool_match_sequential_runs():
    """The pool hands a buffer to one thread at a time: two fits sharing it get exact gradients."""
    from ndiv.memory import pool

    rng = np.random.default_rng(1)
    x = ndiv.tensor(rng.standard_normal((256, 64)).astype(np.float32))  # outputs large enough to pool
    y = ndiv.tensor(rng.standard_normal((256, 1)).astype(np.float32))

    def model():
        ndiv.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 1))

    expected = _train(model(), x, y)
    results, errors = [None, None], []

    def fit(i, m):
        try:
            results[i] = _train(m, x, y)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    old = sys.getswitchinterval()
    was = pool.enabled
    pool.enable()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=fit, args=(i, model())) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert pool.stats()["reuses"] > 0
    finally:
        sys.setswitchinterval(old)
        pool.enable(was)
    assert not errors, errors
    for got in results:
        for step, (g_step, w_step) in enumerate(zip(got, expected)):
            for g, w in zip(g_step, w_step):
                np.testing.assert_array_equal(g, w, err_msg=f"step {step}")
