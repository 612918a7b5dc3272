"""ndiv.memory.retained_heap: glibc's thresholds raised during a fit and restored after, counted
across nested and concurrent fits; NumPy's huge-page advice off during a fit and restored after;
NDIV_RETAIN_HEAP=0 leaves malloc and NumPy alone; a fit gives the same weights either way (only
where memory comes from changes)."""
from __future__ import annotations

import threading

import numpy as np

from ndiv import memory
from ndiv.models import MLP


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))
        return 1


def test_nested_and_concurrent_fits_set_once_and_restore_once(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setitem(memory._heap, "libc", fake)
    monkeypatch.delenv("NDIV_RETAIN_HEAP", raising=False)
    inside = threading.Barrier(3)

    def fit():
        with memory.retained_heap():
            inside.wait()            # all three inside at once
            with memory.retained_heap():
                pass
            inside.wait()

    threads = [threading.Thread(target=fit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.calls == [("mallopt", memory._M_MMAP_THRESHOLD, memory._MMAP_THRESHOLD),
                          ("mallopt", memory._M_TRIM_THRESHOLD, memory._TRIM_THRESHOLD),
                          ("mallopt", memory._M_MMAP_THRESHOLD, 128 << 10),
                          ("mallopt", memory._M_TRIM_THRESHOLD, 128 << 10), ("trim", 0)]
    assert memory._heap["depth"] == 0


def test_off_with_the_environment_variable(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setitem(memory._heap, "libc", fake)
    monkeypatch.setenv("NDIV_RETAIN_HEAP", "0")
    with memory.retained_heap():
        pass
    assert fake.calls == []


def test_restored_when_the_fit_raises(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setitem(memory._heap, "libc", fake)
    monkeypatch.delenv("NDIV_RETAIN_HEAP", raising=False)
    try:
        with memory.retained_heap():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert fake.calls[-1] == ("trim", 0) and memory._heap["depth"] == 0


def test_a_fit_is_the_same_with_and_without(monkeypatch):
    from ndiv.datasets import load_air_passengers
    from ndiv.data import TimeSeriesDataset
    ds = TimeSeriesDataset.from_df(load_air_passengers(as_pandas=False), freq="MS")
    weights = []
    for flag in ("1", "0"):
        monkeypatch.setenv("NDIV_RETAIN_HEAP", flag)
        m = MLP(h=12, input_size=24, hidden_size=16, max_steps=5, random_seed=3).fit_dataset(ds)
        weights.append(m.state_dict()["out.weight"].copy())
    np.testing.assert_array_equal(weights[0], weights[1])


def _numpy_hugepage():
    switch = memory._numpy_hugepage_switch()
    current = switch(True)
    switch(current)
    return current


def test_numpy_huge_pages_off_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv("NDIV_RETAIN_HEAP", raising=False)
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    switch = memory._numpy_hugepage_switch()
    for before in (True, False):
        switch(before)
        try:
            with memory.retained_heap():
                with memory.retained_heap():
                    assert _numpy_hugepage() is False
                assert _numpy_hugepage() is False
            assert _numpy_hugepage() is before
        finally:
            switch(True)


def test_numpy_huge_pages_left_alone_when_the_user_chose(monkeypatch):
    before = _numpy_hugepage()
    monkeypatch.delenv("NDIV_RETAIN_HEAP", raising=False)
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    with memory.retained_heap():
        assert _numpy_hugepage() is before
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE")
    monkeypatch.setenv("NDIV_RETAIN_HEAP", "0")
    with memory.retained_heap():
        assert _numpy_hugepage() is before
