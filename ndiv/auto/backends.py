"""Where trials, cross-validation windows and fits run: one interface over three engines.

    backend = get_backend("local")            # processes on this machine (the default)
    backend = get_backend(dask_client)        # a dask.distributed Client, or "tcp://host:8786"
    backend = get_backend("ray")              # Ray (ray.init() if no cluster is connected)

    handle = backend.scatter(data)            # the data go to the workers once
    outs = backend.map(fn, handle, tasks)     # fn(data, task) per task, results in task order

A task whose worker dies is run again (Dask and Ray reschedule it, the local pool is restarted); a task that still cannot run comes back as a `WorkerLost` in its place,
so the caller records it instead of losing it. Exceptions raised by fn itself are the caller's
to catch (ndiv.auto's trial runner records them as failed trials).

Compute kernels stay single-process: each worker sets its BLAS/OpenMP/Numba thread count so that
workers x threads = the machine's cores (no oversubscription).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import pickle
import sys
import tempfile
import uuid
from dataclasses import dataclass


@dataclass
class WorkerLost:
    """A task that could not run: its worker died `attempts` times (or the engine gave up)."""
    error: str
    attempts: int


def _need(module: str, extra: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f'{module} is not installed; it is needed here: pip install "ndiv[{extra}]"') from e


def set_worker_threads(n: int) -> None:
    """A worker's thread count for BLAS, OpenMP and Numba (the env for libraries loaded later)."""
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(k, str(n))
    from ndiv.threads import set_num_threads
    set_num_threads(n)


def _with_threads(fn, threads, data, task):
    set_worker_threads(threads)
    return fn(data, task)


class Backend:
    """The interface: n_workers, scatter(data) -> handle, map(fn, handle, tasks), close()."""
    n_workers: int = 1

    def scatter(self, data):
        return data

    def map(self, fn, handle, tasks: list) -> list:
        raise NotImplementedError

    def release(self, handle) -> None:
        """Forget a scattered handle (its data may be freed on the workers)."""

    def close(self) -> None:
        """Shut down what this backend started (never a cluster the user passed in)."""


# -- local processes -------------------------------------------------------------------------------
_WORKER_DATA: dict = {}   # in a worker: {handle: data}, the last few scattered


def _local_init(threads):
    set_worker_threads(threads)


def _local_call(fn, handle, task):
    key, path = handle
    if key not in _WORKER_DATA:               # once per worker and handle
        with open(path, "rb") as f:
            data = pickle.load(f)             # a file this backend wrote, never a user's
        while len(_WORKER_DATA) >= 2:
            _WORKER_DATA.pop(next(iter(_WORKER_DATA)))
        _WORKER_DATA[key] = data
    return fn(_WORKER_DATA[key], task)


@contextlib.contextmanager
def _main_hidden():
    """Spawned processes import the parent's __main__ (a script without an `if __name__ ==
    "__main__"` guard would then run again in every worker and fail): while the workers start,
    __main__ shows neither its file nor its spec, so they skip it. Tasks name only importable code."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        for k in saved:
            if k == "__file__":
                del main.__dict__[k]
            else:
                main.__dict__[k] = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


class LocalBackend(Backend):
    """Worker processes on this machine (spawned: a clean interpreter, no forked thread pools),
    started at the first map and kept until close(), so one LocalBackend serves many searches.

    n_workers: default os.cpu_count(); threads per worker: cores // n_workers (at least 1).
    scatter writes the data once to a temporary file that each worker reads once; a pool whose
    worker dies is restarted and the unfinished tasks run again (up to `retries` times each)."""

    def __init__(self, n_workers: int | None = None, threads: int | None = None, retries: int = 2):
        cores = os.cpu_count() or 1
        self.n_workers = int(n_workers or cores)
        if self.n_workers < 1:
            raise ValueError(f"LocalBackend: n_workers must be >= 1, got {n_workers!r}")
        self.threads = int(threads or max(1, cores // self.n_workers))
        self.retries = retries
        self._pool = None
        self._files: dict = {}

    def scatter(self, data):
        fd, path = tempfile.mkstemp(prefix="ndiv-scatter-", suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
        handle = (uuid.uuid4().hex, path)
        self._files[handle[0]] = path
        return handle

    def _executor(self):
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.n_workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_local_init, initargs=(self.threads,))
        return self._pool

    def map(self, fn, handle, tasks: list) -> list:
        out: list = [None] * len(tasks)
        attempts = [0] * len(tasks)
        todo = list(range(len(tasks)))
        while todo:
            pool = self._executor()
            with _main_hidden():        # submit spawns the workers: without re-running the user's script
                futures = {pool.submit(_local_call, fn, handle, tasks[i]): i for i in todo}
            todo = []
            broken = False
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    out[i] = fut.result()
                except cf.process.BrokenProcessPool as e:
                    broken = True
                    attempts[i] += 1
                    if attempts[i] > self.retries:
                        out[i] = WorkerLost(f"a worker process died ({e})", attempts[i])
                    else:
                        todo.append(i)
            if broken:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        return out

    def release(self, handle) -> None:
        path = self._files.pop(handle[0], None)
        if path is not None and os.path.exists(path):
            os.remove(path)

    def close(self) -> None:
        for key in list(self._files):
            self.release((key, None))
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class InProcessBackend(Backend):
    """Tasks one after another in this process (backend=None): no workers, no copies."""

    def map(self, fn, handle, tasks: list) -> list:
        return [fn(handle, t) for t in tasks]


# -- Dask -----------------------------------------------------------------------------------------
class DaskBackend(Backend):
    """A dask.distributed cluster: a Client the user passes (left running), or a scheduler
    address (a Client is opened and closed here). A task whose worker dies is rescheduled on
    another (the scheduler's allowed-failures); one that still fails comes back as WorkerLost."""

    def __init__(self, client=None):
        distributed = _need("distributed", "dask")
        self._own = False
        if client is None:
            try:
                client = distributed.default_client()
            except ValueError as e:
                raise ValueError("backend='dask' needs a dask.distributed Client: create one "
                                 "(Client(LocalCluster(...)) or Client('tcp://scheduler:8786')) and pass it "
                                 "as backend=client, or pass the scheduler address as backend=") from e
        elif isinstance(client, str):
            client, self._own = distributed.Client(client), True
        self.client = client
        import dask
        self.attempts = int(dask.config.get("distributed.scheduler.allowed-failures", 3)) + 1
        info = client.scheduler_info()
        workers = info.get("workers", {})
        self.n_workers = max(1, sum(w.get("nthreads", 1) for w in workers.values()))
        cores = client.run(os.cpu_count) if workers else {}
        slots: dict = {}
        for addr, w in workers.items():
            slots[w.get("host")] = slots.get(w.get("host"), 0) + w.get("nthreads", 1)
        self.threads = {addr: max(1, (cores.get(addr) or 1) // slots[w.get("host")]) for addr, w in workers.items()}

    def scatter(self, data):
        return _DaskHandle(data, self._scatter(data))

    def _scatter(self, data):
        return self.client.scatter([data], broadcast=True, hash=False)[0]   # one future (a dict would be split)

    def map(self, fn, handle, tasks: list) -> list:
        threads = min(self.threads.values()) if self.threads else 1
        out: list = [None] * len(tasks)
        attempts = [0] * len(tasks)
        todo = list(range(len(tasks)))
        while todo:
            # no retries= here: that re-runs tasks that raise (deterministic errors); a task whose worker
            # dies is rescheduled by the scheduler (distributed.scheduler.allowed-failures)
            futures = {i: self.client.submit(_with_threads, fn, threads, handle.future, tasks[i], pure=False)
                       for i in todo}
            todo, lost = [], False
            for i, fut in futures.items():
                try:
                    out[i] = fut.result()
                except Exception as e:  # noqa: BLE001 -- KilledWorker, lost data, ...: the task, not fn
                    if not type(e).__module__.startswith("distributed"):
                        raise
                    attempts[i] += 1
                    if attempts[i] >= self.attempts:
                        out[i] = WorkerLost(f"{type(e).__name__}: {e}", attempts[i])
                    else:
                        todo.append(i)
                        lost = lost or "dependencies" in str(e) or "forgotten" in str(e)
            if lost or (todo and handle.future.status != "finished"):
                # a dead worker held the only copy of the data (it had not reached a new worker yet)
                handle.future = self._scatter(handle.data)
        return out

    def release(self, handle) -> None:
        handle.future.release()

    def close(self) -> None:
        if self._own:
            self.client.close()


@dataclass
class _DaskHandle:
    """Scattered data: the future of its copies on the workers, and the data to scatter again."""
    data: object
    future: object


# -- Ray ------------------------------------------------------------------------------------------
def _ray_call(fn, threads, data, task):
    return _with_threads(fn, threads, data, task)


class RayBackend(Backend):
    """A Ray cluster: the one this process is connected to, or ray.init(address) (None: a local
    one). Tasks are retried by Ray when their worker dies (max_retries)."""

    def __init__(self, address: str | None = None, retries: int = 2, threads: int = 1):
        self.ray = _need("ray", "ray")
        if not self.ray.is_initialized():
            self.ray.init(address=address, include_dashboard=False, log_to_driver=False,
                          ignore_reinit_error=True)
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.threads, self.retries = threads, retries
        self.n_workers = max(1, cpus // threads)
        self._remote = self.ray.remote(num_cpus=threads, max_retries=retries, retry_exceptions=False)(_ray_call)

    def scatter(self, data):
        return self.ray.put(data)

    def map(self, fn, handle, tasks: list) -> list:
        refs = [self._remote.remote(fn, self.threads, handle, t) for t in tasks]
        out = []
        for ref in refs:
            try:
                out.append(self.ray.get(ref))
            except (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError) as e:
                out.append(WorkerLost(f"{type(e).__name__}: {e}", self.retries + 1))
        return out


def get_backend(backend) -> tuple[Backend, bool]:
    """(Backend, owned) for a backend= argument: None (in this process), 'local', 'dask', 'ray',
    a scheduler address ('tcp://...': Dask; 'ray://...': Ray), a dask Client or a Backend.
    owned: the caller made it and should close() it when done."""
    if backend is None:
        return InProcessBackend(), True
    if isinstance(backend, Backend):
        return backend, False
    if isinstance(backend, str):
        if backend == "local":
            return LocalBackend(), True
        if backend == "dask":
            return DaskBackend(), True
        if backend == "ray":
            return RayBackend(), True
        if backend.startswith("ray://"):
            return RayBackend(backend), True
        if "://" in backend:
            return DaskBackend(backend), True
    if type(backend).__name__ == "Client" and type(backend).__module__.startswith("distributed"):
        return DaskBackend(backend), True
    raise ValueError(f"backend must be 'local', 'dask', 'ray', a Dask scheduler address ('tcp://host:8786'), "
                     f"a dask.distributed Client or an ndiv.auto.Backend, got {backend!r}")
