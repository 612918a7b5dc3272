"""Whether operations record a graph. `with ndiv.no_grad():` turns recording off.

The switch is per thread, as in torch: one thread's `no_grad()` (a predict) leaves another
thread's training recording. A new thread starts with recording on.
"""
from __future__ import annotations

import functools
import threading


class _GradLocal(threading.local):
    # The class-level default is what a thread that never set the switch reads: one attribute
    # read on the hot path (Function.apply), no per-thread initialisation.
    enabled = True


_GradState = _GradLocal()


def is_grad_enabled() -> bool:
    return _GradState.enabled


class set_grad_enabled:
    """Context manager (and decorator) that sets whether ops record the graph."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = _GradState.enabled
        _GradState.enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _GradState.enabled = self.prev
        return False


class no_grad:
    """`with ndiv.no_grad():` (or `@ndiv.no_grad()`) builds no graph inside."""

    def __enter__(self):
        self.prev = _GradState.enabled
        _GradState.enabled = False
        return self

    def __exit__(self, *exc):
        _GradState.enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    def __enter__(self):
        self.prev = _GradState.enabled
        _GradState.enabled = True
        return self
