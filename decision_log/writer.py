"""The one writer of a log while a batch job or the service runs.

A :class:`Writer` owns two threads.  The *preparing* thread turns each submitted batch into
the log's rows and digests (:func:`~decision_log.rows.prepare`: pyarrow, DuckDB and compiled
code, mostly outside the GIL); the *writing* thread appends them in submission order, each
batch in one transaction (:meth:`~decision_log.store.DecisionLog.append_prepared`).  So the
next batch is prepared while the previous one is written.  Other writes (outcomes, stored
explanations) are submitted as calls and run on the writing thread, in order with the
batches.  Every submission returns a :class:`~concurrent.futures.Future` that completes when
its write is committed — or fails with the reason nothing was written.

A batch job (:func:`decide_and_log`) stops at the first failure: later submissions fail
with the same error and are not written, so the log keeps whole chunks only.  The service
(``stop_on_error=False``) fails only the submission that failed.

While a writer runs it is the only user of the log's connection for writing.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np

from decision_log.rows import prepare
from decision_log.store import DecisionLog
from decisioning.engine import DecisionBatch, Engine
from decisioning.inputs import Requests
from decisioning.strategy import Strategy

T = TypeVar("T")

#: How much lower the OS priority of a job's deciding and preparing threads is than its
#: writer's: the DuckDB write is the longest stage, so it gets a core whenever it can run
#: and the others fill the gaps (on Linux; the threads end with the job).
_UPSTREAM_NICE = 10


def lower_thread_priority(by: int) -> None:
    """Run the calling thread ``by`` nice steps below the process (Linux: a thread is a task
    with its own nice value); elsewhere, or where it is not allowed, nothing changes."""
    if not by or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + by)
    except (AttributeError, OSError):
        pass


class _Stage:
    """Runs ``work(item)`` on a thread of its own for each item put, in order.

    An error stops the stage: later items are dropped and the error is raised in the
    caller's thread by the next :meth:`put` or by :meth:`close` — nothing is silently lost.
    """

    def __init__(self, name: str, work: Callable[[Any], None], maxsize: int = 2, nice: int = 0) -> None:
        self.work = work
        self.nice = nice
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None:
                continue
            try:
                self.work(item)
            except BaseException as exc:  # re-raised in the caller's thread by put()/close()
                self.error = exc

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class Writer:
    """The preparing and writing threads of one log (see the module docstring).

    Parameters
    ----------
    log : DecisionLog
        The log, open for writing.
    stop_on_error : bool
        Stop at the first failure (a batch job) instead of failing only that submission.
    prepare_nice : int
        How many nice steps below the writing thread the preparing thread runs.
    """

    def __init__(self, log: DecisionLog, *, stop_on_error: bool = False, prepare_nice: int = 0) -> None:
        self.log = log
        self.stop_on_error = stop_on_error
        self.failed: BaseException | None = None  #: the failure that stopped a stop_on_error writer
        self.seconds = {"prepare": 0.0, "log": 0.0}  #: time spent preparing and writing (committing)
        self._write_failed: BaseException | None = None
        self._room = threading.Condition()
        self._waiting = 0  #: submitted and not yet taken by the writing thread
        self._writing = _Stage("klartext-log-writer", self._write)
        self._preparing = _Stage("klartext-log-prepare", self._prepare, nice=prepare_nice)

    def append(self, batch: DecisionBatch, strategy: Strategy) -> Future[int]:
        """Log ``batch`` (decided with ``strategy``); the future gives the number written."""
        return self._submit(("batch", (batch, strategy)))

    def call(self, fn: Callable[[DecisionLog], T]) -> Future[T]:
        """Run ``fn(log)`` on the writing thread, after everything submitted before it."""
        return self._submit(("call", fn))

    def _submit(self, item: tuple[str, Any]) -> Future:
        if self.failed is not None:
            raise self.failed
        future: Future = Future()
        with self._room:
            self._waiting += 1
        self._preparing.put((*item, future))
        return future

    def wait_for_room(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until the writing thread has taken everything
        submitted: the service forms its next group from what arrives while one is
        committed (one large group rather than many small ones)."""
        with self._room:
            self._room.wait_for(lambda: self._waiting == 0, timeout)

    def _taken(self) -> None:
        with self._room:
            self._waiting -= 1
            self._room.notify_all()

    def _fail(self, future: Future, exc: BaseException) -> None:
        if self.stop_on_error and self.failed is None:
            self.failed = exc
        future.set_exception(exc)

    def _prepare(self, item: tuple[str, Any, Future]) -> None:
        kind, payload, future = item
        try:
            if self.failed is not None:
                raise self.failed
            if kind == "batch":
                t = time.perf_counter()
                batch, strategy = payload
                payload = prepare(batch, strategy, self.log.pseudonymise(batch.requests.customer_id),
                                  keys=self.log.sealing_keys())
                self.seconds["prepare"] += time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - the submitter is told, through its future
            self._taken()
            self._fail(future, exc)
            return
        self._writing.put((kind, payload, future))

    def _write(self, item: tuple[str, Any, Future]) -> None:
        kind, payload, future = item
        self._taken()
        if self._write_failed is not None:  # (a failed preparation only stops what comes after it)
            future.set_exception(self._write_failed)
            return
        t = time.perf_counter()
        try:
            result = self.log.append_prepared(payload) if kind == "batch" else payload(self.log)
            self.seconds["log"] += time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - the submitter is told, through its future
            if self.stop_on_error:
                self._write_failed = exc
            self._fail(future, exc)
            return
        future.set_result(result)

    def close(self) -> None:
        """Write everything submitted, then stop; raises what stopped a ``stop_on_error``
        writer."""
        try:
            self._preparing.close()
        finally:
            self._writing.close()
        if self.failed is not None:
            raise self.failed


def decide_and_log(
    log: DecisionLog,
    engine: Engine,
    requests: Requests,
    ts_us: np.ndarray,
    *,
    chunk: int = 10_000,
    on_logged: Callable[[int], None] | None = None,
    spans: list[tuple[int, int]] | None = None,
    before: Callable[[np.ndarray, Requests], None] | None = None,
    after: Callable[[np.ndarray, Requests, DecisionBatch], None] | None = None,
    decision_ids: np.ndarray | None = None,
    keep: bool = True,
) -> list[DecisionBatch]:
    """Decide ``requests`` in chunks and log every decision; returns the batches (none without
    ``keep``: a streamed job holds each batch only until it is written — a quarter of a million
    decisions' batches take about a gigabyte).

    ``spans`` replaces the equal chunks by the caller's (start, end) row ranges, in order.
    ``before(rows, requests)`` may change a chunk's requests just before it is decided and
    ``after(rows, requests, batch)`` sees each decided chunk; both run on the deciding thread,
    one chunk after the other, so a later chunk's requests can carry what the earlier ones
    decided (the demo's returning customers see their earlier contacts and purchases).
    ``decision_ids``: the requests' ids (a batch run's, :func:`decisioning.ids.run_ids`).

    Three stages overlap, each on its own thread: one decides chunk *k + 2* while the
    writer's preparing thread makes chunk *k + 1* into rows and its writing thread puts
    chunk *k* into DuckDB.  The write is the longest stage, so the other two run at a lower
    OS priority; this thread hands out the chunks and waits.  The first failure anywhere
    stops the job and is raised here; the log keeps the chunks written before it.
    """
    log.register_strategy(engine.strategy)
    log.register_models(engine.models)
    batches = []
    with log.bulk():
        writer = Writer(log, stop_on_error=True, prepare_nice=_UPSTREAM_NICE)

        def decide(span: tuple[int, int]) -> None:
            rows = np.arange(*span)
            req = requests.take(rows)
            if before is not None:
                before(rows, req)
            log.apply_objections(req, engine.strategy)
            batch = engine.decide(req, ts_us=ts_us[rows],
                                  decision_ids=None if decision_ids is None else decision_ids[rows])
            if after is not None:
                after(rows, req, batch)
            future = writer.append(batch, engine.strategy)
            if on_logged:
                future.add_done_callback(_reporter(on_logged, len(batch)))
            if keep:
                batches.append(batch)

        decider = _Stage("klartext-decide", decide, nice=_UPSTREAM_NICE)
        try:
            for span in spans if spans is not None else _chunks(len(requests), chunk):
                decider.put(span)
        finally:
            try:
                decider.close()
            finally:
                writer.close()
    return batches


def _reporter(on_logged: Callable[[int], None], n: int) -> Callable[[Future], None]:
    """A future's callback that reports ``n`` decisions logged once it has succeeded."""
    def done(future: Future) -> None:
        if future.exception() is None:
            on_logged(n)
    return done


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of each chunk: ``size`` rows, but a quarter and a half of that first and
    last, so the stages start sooner and finish together (the first chunk is decided while
    the other stages wait; the last is written while the engine waits)."""
    q, h = max(1, size // 4), max(1, size // 2)
    if n < 3 * size:
        cuts = list(range(0, n, size)) + [n]
    else:
        cuts = [0, q, q + h] + list(range(q + h + size, n - q - h, size)) + [n - q - h, n - q, n]
    return list(zip(cuts[:-1], cuts[1:]))
