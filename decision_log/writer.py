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

With a ``journal`` (the service's writer) a batch is acknowledged once it is numbered,
chained and durable in the log's journal (:mod:`decision_log.journal`), and the writing
thread loads what was journaled into DuckDB behind the answers, several batches per
transaction; the calls submitted after a batch run after it is loaded.

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

from decision_log import journal as journals
from decision_log.rows import Chained, prepare
from decision_log.store import DecisionLog
from decisioning.engine import DecisionBatch, Engine
from decisioning.errors import LogError
from decisioning.inputs import Requests
from decisioning.strategy import Strategy

T = TypeVar("T")

#: With a journal, the writing thread gathers what was journaled for up to this long into one
#: transaction (the service's group of 8 decisions took 7 ms to insert and commit alone, 1.7 ms
#: within a transaction of 50 ms' groups; 100 ms gained nothing more), unless a reader of the
#: file waits for it (:meth:`Writer.wait_loaded`).
LOAD_EVERY_S = 0.05

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
    journal : bool
        Acknowledge a batch once it is durable in the log's journal and load it behind the
        answer (the service; see the module docstring).
    """

    def __init__(self, log: DecisionLog, *, stop_on_error: bool = False, prepare_nice: int = 0,
                 journal: bool = False) -> None:
        self.log = log
        self.stop_on_error = stop_on_error
        self.failed: BaseException | None = None  #: the failure that stopped a stop_on_error writer
        #: time spent preparing, journaling and writing (committing)
        self.seconds = {"prepare": 0.0, "log": 0.0} | ({"journal": 0.0} if journal else {})
        self._write_failed: BaseException | None = None
        self._room = threading.Condition()
        self._waiting = 0  #: submitted and not yet taken by the writing thread (journaled, with a journal)
        self.journal = journals.Journal(log.path) if journal else None
        self._journaled: tuple[int, str] | None = None  #: the chain's head as journaled
        self._loaded = -1  #: the last decision's seq loaded into the file (with a journal)
        self._load_failed: BaseException | None = None
        self._hurry = threading.Event()  #: someone waits for the load: load now, do not gather
        self._waiters = 0
        self._writing = _Stage("klartext-log-writer", self._write, maxsize=64 if journal else 2)
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

    def wait_loaded(self, timeout: float = 60.0) -> None:
        """Wait until every batch acknowledged so far is in the log's file (with a journal;
        without one an acknowledged batch is there already): what the service reads from its
        own log — contact history, a decision's record — then includes it."""
        if self.journal is None:
            return
        with self._room:
            target = -1 if self._journaled is None else self._journaled[0]
            if self._loaded >= target and self._load_failed is None:
                return
            self._waiters += 1
            self._hurry.set()
            try:
                loaded = self._room.wait_for(lambda: self._loaded >= target or self._load_failed is not None, timeout)
            finally:
                self._waiters -= 1
            if not loaded:
                raise LogError(f"The log's file took more than {timeout:.0f} s to load the journaled decisions.",
                               "Retry; if it persists, check the disk and restart the service.")
            if self._load_failed is not None:
                raise self._unloaded()

    def journal_state(self) -> dict | None:
        """What /health shows of the journal: the positions of the last decision journaled and
        loaded (None before the first), and how many wait between them."""
        if self.journal is None:
            return None
        with self._room:
            if self._journaled is None:
                return {"journaled": None, "loaded": None, "waiting": 0}
            return {"journaled": self._journaled[0], "loaded": self._loaded,
                    "waiting": self._journaled[0] - self._loaded}

    def load_error(self) -> LogError | None:
        """Why the journal is not being loaded any more (None: it is)."""
        return None if self._load_failed is None else self._unloaded()

    def _unloaded(self) -> LogError:
        return LogError(f"The log's file {self.log.path!r} could not take the journaled decisions: "
                        f"{self._load_failed}",
                        "They are safe in the journal and are loaded when the log is next opened for writing: "
                        "check free disk space, then restart the service.")

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
            if self._load_failed is not None:
                raise self._unloaded()
            if kind == "batch":
                t = time.perf_counter()
                batch, strategy = payload
                payload = prepare(batch, strategy, self.log.pseudonymise(batch.requests.customer_id),
                                  keys=self.log.sealing_keys())
                self.seconds["prepare"] += time.perf_counter() - t
                if self.journal is not None and payload.n:
                    self._journal(payload, future)
                    return
        except Exception as exc:  # noqa: BLE001 - the submitter is told, through its future
            self._taken()
            self._fail(future, exc)
            return
        self._writing.put((kind, payload, future))

    def _journal(self, prepared, future: Future) -> None:
        """Number, chain and journal a batch, acknowledge it, and hand it to the writing thread
        to load (on the preparing thread, in submission order)."""
        strategy = prepared.strategy
        if strategy is not None and strategy.version not in self.log._registered:
            # a new strategy is registered in the file before its first decision is journaled
            register = Future()
            self._writing.put(("register", lambda log: log.register_strategy(strategy), register))
            register.result()
        t = time.perf_counter()
        if self._journaled is None:  # nothing journaled yet: the file's head is the chain's, loaded
            head = self.log._next_seq()
            with self._room:
                self._journaled, self._loaded = head, head[0]
        chained = self.log.chain_prepared(prepared, after=self._journaled)
        self.journal.append(chained)  # raises: nothing acknowledged, the head stays
        with self._room:
            self._journaled = chained.head
        self.seconds["journal"] += time.perf_counter() - t
        self._taken()
        future.set_result(chained.n)  # acknowledged: durable in the journal
        try:
            self._writing.put(("chained", chained, None))
        except BaseException as exc:  # (the writing thread stopped): journaled, loaded at the next open
            self._load_failed = exc

    def _write(self, item: tuple[str, Any, Future]) -> None:
        kind, payload, future = item
        if kind == "chained":
            self._load_from(payload)
            return
        if kind != "register":  # (the journal's own call was not submitted)
            self._taken()
        if self._write_failed is not None:  # (a failed preparation only stops what comes after it)
            future.set_exception(self._write_failed)
            return
        if self._load_failed is not None:
            future.set_exception(self._unloaded())
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

    def _load_from(self, first: Chained) -> None:
        """Load ``first`` and every journaled batch queued right behind it in one transaction,
        then run the item that ended the run (a call, in its order)."""
        batches, after, end = [first], None, False
        until = time.monotonic() + LOAD_EVERY_S
        while True:
            try:  # gather for up to LOAD_EVERY_S unless someone waits for the load
                left = 0 if self._hurry.is_set() else until - time.monotonic()
                nxt = self._writing.q.get(timeout=min(left, 0.002)) if left > 0 else self._writing.q.get_nowait()
            except queue.Empty:
                if left > 0:
                    continue
                break
            if nxt is None:  # close()'s end mark: put back below for the stage to see
                end = True
                break
            if nxt[0] == "chained":
                batches.append(nxt[1])
                continue
            after = nxt
            break
        t = time.perf_counter()
        if self._load_failed is None:
            try:
                self.log.insert_chained(batches)
            except Exception as exc:  # noqa: BLE001 - acknowledged and journaled: told to what comes next
                self._load_failed = exc
        self.seconds["log"] += time.perf_counter() - t
        if self._load_failed is None:
            self.journal.loaded(batches[-1].head[0])
        with self._room:
            if self._load_failed is None:
                self._loaded = batches[-1].head[0]
            self._room.notify_all()
            if not self._waiters:
                self._hurry.clear()
        if end:
            self._writing.q.put(None)  # (nothing is put after it: there is room)
        elif after is not None:
            self._write(after)

    def close(self) -> None:
        """Write everything submitted, then stop; raises what stopped a ``stop_on_error``
        writer.  A journal everything of which was loaded is removed."""
        try:
            self._preparing.close()
        finally:
            self._writing.close()
            if self.journal is not None:  # removed only when everything journaled is in the file
                self.journal.close(remove=self._load_failed is None and (
                    self._journaled is None or self._loaded >= self._journaled[0]))
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
