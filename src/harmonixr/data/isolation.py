"""Run untrusted work in worker processes, so that one bad input costs one result, never the run.

symusic's C++ parser can abort the whole process on some malformed MIDI files (symusic issues #104
and #34), and no ``try/except`` catches an abort. :class:`IsolatedPool` therefore runs each item in
a long-lived worker process with an address-space limit, watches it with a per-item time limit,
and turns a crash, a hang or an out-of-memory into a :class:`Failure` for that item alone; the
dead worker is replaced and the run goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

_READY = "ready"  # a worker's first message: item time limits start counting after it
STARTUP_TIMEOUT_S = 300.0  # a worker that cannot even import its libraries in this time is broken
# Native libraries must not start thread pools in every worker (memory, and the limit below).
_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Failure:
    """Why an item produced no result: ``crashed``, ``timeout``, ``out_of_memory`` or ``error``."""

    kind: str
    detail: str


def _worker_main(
    conn: Connection,
    fn: Callable[[Any], Any],
    init: Callable[[Any], None] | None,
    init_arg: Any,
    memory_mb: int | None,
) -> None:
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if init is not None:
        init(init_arg)
    conn.send(_READY)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        index, item = message
        try:
            outcome: tuple[str, Any] = ("ok", fn(item))
        except MemoryError:
            outcome = ("out_of_memory", f"exceeded the worker memory limit of {memory_mb} MB")
        except Exception as exc:  # noqa: BLE001 - reported to the parent, item by item
            outcome = ("error", f"{type(exc).__name__}: {exc}")
        conn.send((index, outcome))


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    busy: tuple[int, float] | None = None  # (item index, start time)
    ready: bool = False
    started: float = field(default_factory=time.monotonic)


class IsolatedPool:
    """A pool of worker processes with per-item time limits and a per-worker memory limit.

    ``fn`` and ``init`` must be module-level functions (workers are started with ``spawn``).
    Results come back as ``(index, result_or_Failure)`` in completion order.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        workers: int,
        timeout_s: float,
        memory_mb: int | None = None,
        init: Callable[[Any], None] | None = None,
        init_arg: Any = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._fn, self._init, self._init_arg = fn, init, init_arg
        self._timeout_s, self._memory_mb = timeout_s, memory_mb
        self._ctx = mp.get_context("spawn")
        for key, value in _SINGLE_THREAD_ENV.items():
            os.environ.setdefault(key, value)
        self._workers = [self._start() for _ in range(workers)]

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self._fn, self._init, self._init_arg, self._memory_mb),
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def _replace(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        fresh = self._start()
        worker.process, worker.conn, worker.busy = fresh.process, fresh.conn, None
        worker.ready, worker.started = False, fresh.started

    def map_unordered(self, items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """Run ``fn`` on every item; yield ``(index, result)`` or ``(index, Failure)``."""
        pending = deque(enumerate(items))
        while pending or any(w.busy for w in self._workers):
            for worker in self._workers:
                if worker.busy is None and pending:
                    index, item = pending.popleft()
                    worker.conn.send((index, item))
                    worker.busy = (index, time.monotonic())
            now = time.monotonic()
            deadlines = [w.busy[1] + self._timeout_s for w in self._workers if w.busy and w.ready]
            wait_s = min(deadlines, default=now + 1.0) - now
            wait([w.conn for w in self._workers] + [w.process.sentinel for w in self._workers], max(wait_s, 0.01))
            for worker in self._workers:
                yield from self._collect(worker)

    def _collect(self, worker: _Worker) -> Iterator[tuple[int, Any]]:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message == _READY:
                    worker.ready = True
                    if worker.busy:  # the item's clock starts now, not at the worker's start
                        worker.busy = (worker.busy[0], time.monotonic())
                    continue
                index, (status, payload) = message
                worker.busy = None
                yield index, payload if status == "ok" else Failure(status, payload)
        except (EOFError, OSError):
            pass  # the worker died mid-reply: reported as a crash below
        if not worker.process.is_alive():
            worker.process.join(timeout=5)
            if worker.busy is None and not worker.ready:
                raise RuntimeError(f"a worker process failed to start: {_describe_exit(worker.process.exitcode)}")
            if worker.busy:
                yield worker.busy[0], Failure("crashed", _describe_exit(worker.process.exitcode))
            self._replace(worker)
        elif worker.busy and worker.ready and time.monotonic() - worker.busy[1] > self._timeout_s:
            yield worker.busy[0], Failure("timeout", f"took longer than {self._timeout_s:g} s")
            self._replace(worker)
        elif not worker.ready and time.monotonic() - worker.started > STARTUP_TIMEOUT_S:
            raise RuntimeError(f"a worker process did not start within {STARTUP_TIMEOUT_S:g} s")

    def close(self) -> None:
        """Stop every worker (politely, then by force)."""
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
            worker.conn.close()

    def __enter__(self) -> IsolatedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process killed by {name} (the parser aborted)"
    return f"worker process exited with code {code}"
