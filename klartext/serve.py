"""The real-time decision service: ``klartext serve`` (FastAPI + uvicorn).

The audit guarantee — a response is sent only after its decision record, with every
candidate row and its chain link, is durable:

* each request is validated on arrival (a bad one gets a 4xx naming the field and nothing
  is logged) into a one-row :class:`~decisioning.inputs.Requests`, then queued with a future;
* a **decide thread** takes what is queued (up to ``max_batch`` requests, or what arrives
  within ``max_wait_ms`` — but no longer than it takes as many requests as the last groups
  had: clients in lock step do not wait for a request that is not coming), decides the group
  in one vectorised engine call;
* the writer's **preparing thread** turns it into the log's rows (:func:`~decision_log.rows.prepare`,
  hashes included), numbers and chains them, appends them to the log's **journal** and
  ``fdatasync``-s it (:mod:`decision_log.journal`), and only then resolves the futures;
* its **log thread** loads what was journaled into the DuckDB file behind the answers, the
  groups of up to 50 ms in **one transaction** (a group of 8 alone took 7 ms to insert and
  commit, 1.7 ms a group in a transaction of 50 ms' groups).  What the service reads from
  its own file — contact history, a decision's record — and every later write (outcomes,
  explanations) waits for that load;
* the queue is bounded: when it is full the request is refused at once with **503** and
  ``Retry-After`` — nothing is ever dropped silently; a request whose group could not be
  written gets a 503 that says it was not logged;
* after ``kill -9`` every acknowledged decision is in the log: the next open for writing (a
  restart, the sealing of a worker's file) loads from the journal what the file lacks, and a
  group is one frame — all or nothing (a frame cut short was never acknowledged);
* a **replicator** (:mod:`decision_log.live`) copies what is new to one of two replica files
  about once a second, so the dashboard can read the log while the service holds it.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import gc
import hashlib
import json
import math
import os
import queue
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from decision_log import lifecycle, queries, register
from decision_log.integrity import compile_assembly
from decision_log.live import Replicator
from decision_log.peers import Peers
from decision_log.store import DecisionLog, history_days
from decision_log.writer import Writer
from decisioning.engine import DecisionBatch, Engine
from decisioning.errors import ConflictError, InputError, KlartextError, LogError
from decisioning.forest import compile_walk
from decisioning.inputs import Requests
from decisioning.strategy import STAGES, Strategy, load_strategy
from explain.api import Explainer
from klartext import access

MAX_BODY = 64 * 1024


#: How often the service brings the dashboard's summaries up to date (decision_log.summaries).
SUMMARY_EVERY_S = 300.0


@dataclass(frozen=True)
class Worker:
    """Service worker ``k`` of ``klartext serve --workers N`` (see :mod:`klartext.workers`): the
    log's pseudonym key and customers' key file, which the head's owner read for it."""

    k: int
    key: bytes
    keys_path: str | None
    file_id: str  #: issued for this worker's file by the supervisor (:meth:`DecisionLog.issue_worker_file`)


class DecideIn(BaseModel):
    """A decision request (see docs/strategy.md for the feature values a strategy expects)."""

    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=200)
    channel: str = Field(min_length=1, max_length=100)
    features: dict[str, bool | int | float | str]
    contacts: dict[str, int] | None = None
    rejections: dict[str, dict[str, int | float]] | None = None


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision_id: str = Field(min_length=1, max_length=100)
    action_id: str | None = Field(default=None, max_length=100)
    outcome: str = Field(pattern="^(accepted|rejected|ignored|visited|none)$")
    revenue: float = 0.0
    margin: float = 0.0
    churned: bool | None = None


class ObjectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=200)
    channels: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(default=None, max_length=50)
    withdraw: bool = False
    note: str | None = Field(default=None, max_length=1000)


@dataclass
class _Job:
    kind: str  # decide | outcome
    payload: Any  # decide: (request dict, its validated one-row Requests); outcome: dict
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    t0: float = field(default_factory=time.perf_counter)


@dataclass
class _Group:
    """Requests decided together and logged in one transaction (group commit)."""

    jobs: list[_Job]
    batch: DecisionBatch | None = None
    answers: list[dict] | None = None  #: made beside the decision; sent once the group is logged


class Service:
    """Owns the log, the engine, the decide thread, the log's writer and the replicator.

    ``freeze_gc`` (``klartext serve`` sets it) moves what the service holds for its lifetime
    out of the garbage collector's sight, so a full collection, which stops every thread,
    scans only what requests allocate: no multi-millisecond pauses in the latency tail."""

    def __init__(self, db: str, strategy: Strategy | None = None, *, max_queue: int = 2000, max_batch: int = 256,
                 max_wait_ms: float = 2.0, replicate: bool = True, replica_interval_s: float = 1.0,
                 freeze_gc: bool = False, follow_s: float = 1.0, worker: Worker | None = None) -> None:
        #: ``klartext serve --workers N``: this process is one worker, logging into a file of its own
        self.worker = worker
        self.log = DecisionLog.worker(db, worker.k, worker.key, worker.keys_path, worker.file_id) if worker is not None \
            else DecisionLog.open(db)
        self.home = self.log.home
        try:
            if worker is None and self.log.manifest is not None:
                self.log.seal_workers()  # what a stopped `serve --workers` left: in the log before this one writes
            with self.source() as src:
                self.deciders = lifecycle.arrangement(src, strategy)
                days = max(history_days(e.strategy) for e in self.deciders.engines)
                if worker is not None:  # the rejections the head file holds (the shards' are read in place)
                    head_rejections = src._head_cursor().sql(
                        "SELECT * FROM outcomes WHERE outcome = 'rejected' AND ts >= now() - to_days(?)",
                        params=[math.ceil(days)]).to_arrow_table()
        except BaseException:
            self.log.close()
            raise
        for e in self.deciders.engines:
            self.log.register_strategy(e.strategy)
            self.log.register_models(e.models)
        if worker is not None:  # the other workers' contacts and the head's rejections count towards its limits
            self.log.peers = Peers(self.log, days)
            self.log.peers.add_outcomes(head_rejections)
        compile_walk()  # the models' compiled walk and the hash chain's byte assembly are ready
        compile_assembly()  # before the first request
        self.follow = {"every_s": follow_s, "checked": None, "switched": None, "error": None, "refused": None,
                       "stamp": None}
        if freeze_gc:
            gc.collect()
            gc.freeze()
        self.queue: queue.Queue[_Job] = queue.Queue(maxsize=max_queue)
        self._elsewhere = ThreadPoolExecutor(2, thread_name_prefix="klartext-elsewhere")
        self.writer = Writer(self.log, journal=db != ":memory:")  # acknowledged once journaled
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self._sizes: deque[int] = deque(maxlen=8)  #: the sizes of the last groups taken
        self.logged = 0
        self.groups = 0
        self.seconds = {"decide": 0.0}
        self._stop = threading.Event()
        self._decider = threading.Thread(target=self._decide_loop, name="klartext-decide", daemon=True)
        self._decider.start()
        self._follower = None
        if follow_s > 0:
            self._follower = threading.Thread(target=self._follow_loop, name="klartext-follow", daemon=True)
            self._follower.start()
        self.replicator = Replicator(self.log, interval_s=replica_interval_s) if replicate and db != ":memory:" else None
        _OPEN.add(self)

    @contextmanager
    def source(self):
        """Where strategies and models are read: the log this service writes, or — for a
        worker — the whole log, read-only, for as long as the ``with`` block lasts."""
        if self.worker is None:
            yield self.log
            return
        with DecisionLog.open(self.home, read_only=True, wait_s=30) as whole:
            yield whole

    @property
    def strategy(self) -> Strategy:
        """The champion's strategy (what requests are checked against on arrival)."""
        return self.deciders.champion.strategy

    @property
    def engine(self) -> Engine:
        return self.deciders.champion

    # -- following the lifecycle -------------------------------------------------------------

    def _follow_loop(self) -> None:
        """Every ``follow_s`` seconds: has a strategy step been recorded?  Then load the new
        arrangement completely (strategies, models, prepared engines), register it in the log
        on the writer's thread, and only then switch — a request meets the old engines or the
        new ones, never a half-loaded strategy."""
        summarised = time.monotonic()
        while not self._stop.wait(self.follow["every_s"]):
            try:
                self.check_lifecycle()
                self.follow["error"] = None
            except Exception as exc:  # noqa: BLE001 - the service keeps deciding with what it has
                self.follow["error"] = f"{type(exc).__name__}: {exc}"
            if self.worker is None and time.monotonic() - summarised >= SUMMARY_EVERY_S:
                # the dashboard's summaries count what was logged (until then its readers compute
                # the new days from the rows); on the writer's thread, between two groups
                summarised = time.monotonic()
                self.writer.call(lambda log: log.refresh_summaries())

    def check_lifecycle(self) -> bool:
        """Switch to the recorded arrangement if it changed; whether it switched."""
        if self.home != ":memory:" and not register.path_of(self.home).exists():
            return False  # nothing was ever recorded beside this log
        with self.log.register(read_only=True) as reg:  # (reading changes nothing the decide thread watches)
            seen = lifecycle.stamp(reg)
            if seen == self.follow.get("stamp"):
                self.follow["checked"] = time.time()
                return False
            st = lifecycle.state(reg)  # verified: a step that does not verify is not followed (LogError)
        self.follow["checked"] = time.time()
        self.follow["stamp"] = seen
        if st.invalid:
            bad, why = st.invalid[0]
            self.follow["refused"] = f"{bad.step} of {bad.version} by {bad.actor}: {why}"
        if (st.champion, st.canary, st.share) == (self.deciders.state.champion, self.deciders.state.canary,
                                                  self.deciders.state.share) or not st.managed:
            self.deciders = lifecycle.Deciders(st, self.deciders.champion, self.deciders.canary)
            return False
        with self.source() as src:
            new = lifecycle.deciders(src, st)

        def known(log: DecisionLog) -> None:
            for e in new.engines:
                log.register_strategy(e.strategy)
                log.register_models(e.models)
        self.writer.call(known).result(timeout=60)
        self.deciders = new
        self.follow["switched"] = time.time()
        return True

    # -- the decide thread -----------------------------------------------------------------

    def _take(self) -> list[_Job] | None:
        try:
            first = self.queue.get(timeout=0.1)
        except queue.Empty:
            return None
        jobs = [first]
        deadline = time.perf_counter() + self.max_wait
        while len(jobs) < self.max_batch:
            if len(jobs) >= max(self._sizes, default=self.max_batch):
                left = 0  # as many as the recent groups had: take what is queued and go
            else:
                left = deadline - time.perf_counter()
            try:
                jobs.append(self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        self._sizes.append(len(jobs))
        return jobs

    def _decide_loop(self) -> None:
        reader = self.log.con.cursor()  # contact history reads, beside the writer's writes
        while not self._stop.is_set():
            # Form the next group only once the writer has taken the previous one: what arrives
            # while a group is committed goes into one group, not into many small ones.
            self.writer.wait_for_room(timeout=0.1)
            jobs = self._take()
            if jobs is None:
                continue
            run: list[_Job] = []
            for j in jobs:  # keep arrival order: outcomes between decisions go in their place
                if j.kind == "decide":
                    run.append(j)
                    continue
                if run:
                    self._decide(run, reader)
                    run = []
                self._outcome(j)
            if run:
                self._decide(run, reader)

    def _decide(self, jobs: list[_Job], reader) -> None:
        """Decide a group and hand it to the writer; its clients are answered once it is logged.
        With a canary, each customer's part goes to its version's engine (and is logged as
        a group of its own)."""
        d = self.deciders  # one arrangement for the whole group
        if d.canary is None:
            self._decide_part(jobs, d.champion, reader)
            return
        try:
            arm = d.route(self.log.pseudonymise([j.payload[0]["customer_id"] for j in jobs]))
        except Exception as exc:  # noqa: BLE001 - every client of the group is told
            self._failed(_Group(jobs), exc)
            return
        for k, engine in enumerate(d.engines):
            part = [j for j, a in zip(jobs, arm.tolist()) if a == k]
            if part:
                self._decide_part(part, engine, reader)

    def _decide_part(self, jobs: list[_Job], engine: Engine, reader) -> None:
        s = engine.strategy
        group = _Group(jobs)
        try:
            t = time.perf_counter()
            parts, kept = [], []
            for j in jobs:
                item, req, version = j.payload
                try:
                    if version != s.version:  # checked on arrival against another version: check again
                        req = Requests.from_dicts(s, [{k: v for k, v in item.items() if v is not None}])
                    if item.get("contacts") is None or item.get("rejections") is None:  # fill from the log
                        self.writer.wait_loaded()  # (every decision answered so far counts)
                        with self.log.history_lock:  # (not while a rotated peer's copies are swapped)
                            contacts, rejections = queries.contact_history(
                                reader, self.log.pseudonymise([item["customer_id"]])[0], s,
                                decisions=self.log.history_source(s), outcomes=self.log.history_outcomes())
                        item = {**item, "contacts": contacts if item.get("contacts") is None else item["contacts"],
                                "rejections": rejections if item.get("rejections") is None else item["rejections"]}
                        req = Requests.from_dicts(s, [{k: v for k, v in item.items() if v is not None}])
                except InputError as exc:  # this request only: the rest of the group goes on
                    self._resolve(j, error=exc)
                    continue
                parts.append(req)
                kept.append(j)
            if not kept:
                return
            group = _Group(kept)
            req = Requests.concat(parts)
            self.log.apply_objections(req, s)
            group.batch = engine.decide(req)
            group.answers = self._answers(group, s)
            self.seconds["decide"] += time.perf_counter() - t
            logged = self.writer.append(group.batch, s)
        except Exception as exc:  # noqa: BLE001 - every client of the group is told
            self._failed(group, exc)
            return
        logged.add_done_callback(lambda f: self._committed(group, f))

    def _committed(self, group: _Group, logged: Future) -> None:
        """On the writer's thread, once the group is committed (or could not be)."""
        if logged.exception() is not None:
            self._failed(group, logged.exception())
            return
        self.logged += len(group.jobs)
        self.groups += 1
        for j, answer in zip(group.jobs, group.answers):
            answer["latency_ms"] = round((time.perf_counter() - j.t0) * 1000, 3)
            self._resolve(j, answer)

    def _failed(self, group: _Group, exc: BaseException) -> None:
        """Nothing of this group was written: every client is told."""
        err = exc if isinstance(exc, KlartextError) else LogError(f"The decision was not logged: {exc}",
                                                                  "Retry the request.")
        for j in group.jobs:
            self._resolve(j, error=err)

    @staticmethod
    def _resolve(job: _Job, value: Any = None, error: BaseException | None = None) -> None:
        def done() -> None:
            if job.future.done():
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(value)
        job.loop.call_soon_threadsafe(done)

    def _answers(self, group: _Group, s: Strategy) -> list[dict]:
        """The answer to each request of a decided group (sent once the group is logged)."""
        batch = group.batch
        aids = s.action_ids
        order = np.argsort(np.where(batch.rank > 0, batch.rank, 10**9), axis=1, kind="stable")
        n_ranked = (batch.rank > 0).sum(axis=1)
        n_filtered = (~np.isin(batch.stage, [STAGES.index("ranked"), STAGES.index("selected")])).sum(axis=1)
        out = []
        for r, j in enumerate(group.jobs):
            ranked = [
                {"action_id": aids[a], "rank": int(batch.rank[r, a]), "priority": float(batch.priority[r, a]),
                 "propensity": float(batch.propensity[r, a]), "selected": bool(batch.selected[r, a])}
                for a in order[r, : int(n_ranked[r])].tolist()
            ]
            out.append({
                "decision_id": str(batch.decision_id[r]),
                "channel": j.payload[0]["channel"],
                "chosen_actions": [aids[a] for a in batch.chosen[r]],
                "selection_probability": float(batch.selection_probability[r]),
                "explored": bool(batch.explored[r]),
                "ranked": ranked,
                "filtered": int(n_filtered[r]),
                "strategy_version": batch.strategy_version,
                "logged": True,
            })
        return out

    def _outcome(self, job: _Job) -> None:
        """Log a reported outcome on the writer's thread, in order with the decisions."""
        import pandas as pd

        o = job.payload
        row = pd.DataFrame([{
            "decision_id": o["decision_id"], "action_id": o.get("action_id"), "outcome": o["outcome"],
            "revenue": o.get("revenue", 0.0), "margin": o.get("margin", 0.0), "churned": o.get("churned"),
            "ts_us": int(time.time() * 1e6)}])

        def answered(f: Future) -> None:
            if isinstance(f.exception(), LookupError) and self.worker is not None:
                self._elsewhere.submit(self._outcome_elsewhere, job, row)  # another worker's decision?
            elif f.exception() is not None:
                self._resolve(job, error=f.exception())
            else:
                self._resolve(job, {"logged": f.result(), "duplicate": f.result() == 0})

        if self.worker is not None:  # a repeat another worker took is in the whole log, not in this file
            self._elsewhere.submit(self._outcome_of_a_worker, job, row, answered)
            return
        self.writer.call(lambda log: log.append_outcomes(row, checked=True)).add_done_callback(answered)

    def _outcome_of_a_worker(self, job: _Job, row, answered: Callable[[Future], None]) -> None:
        """A worker's outcome: left out where another worker logged the same one already (the
        whole log: its replicas, about a second old), refused where it logged another; then
        logged on the writer's thread as any (a decision of another worker: :meth:`_outcome_elsewhere`)."""
        try:
            with self.source() as whole:
                row = self.log._checked_outcomes(row, whole.con.cursor(), decisions=False)
        except BaseException as exc:  # noqa: BLE001 - told to the client
            self._resolve(job, error=exc)
            return
        if row.empty:
            self._resolve(job, {"logged": 0, "duplicate": True})
            return
        self.writer.call(lambda log: log.append_outcomes(row, checked=True)).add_done_callback(answered)

    def _outcome_elsewhere(self, job: _Job, row) -> None:
        """A worker's outcome for a decision it did not make: checked against the whole log
        (the shards and the other workers' live replicas, about a second old), then logged
        in this worker's file."""
        try:
            with self.source() as whole:
                kept = self.log._checked_outcomes(row, whole.con.cursor())
            n = self.writer.call(lambda log: log.append_outcomes(kept, elsewhere=True)).result(timeout=60) if len(kept) else 0
        except BaseException as exc:  # noqa: BLE001 - told to the client
            self._resolve(job, error=exc)
            return
        self._resolve(job, {"logged": n, "duplicate": n == 0})

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._decider.join(timeout=5)
        if self._follower is not None:
            self._follower.join(timeout=5)
        self._elsewhere.shutdown(wait=True)
        self.writer.close()
        if self.log.peers is not None:
            self.log.peers.close()
        if self.replicator is not None:
            self.replicator.close()
        self.log.close()
        _OPEN.discard(self)


#: Services not closed yet: closed at exit, so that no thread of theirs is inside DuckDB
#: while the interpreter shuts down (a daemon thread stopped there aborts the process).
_OPEN: weakref.WeakSet[Service] = weakref.WeakSet()


@atexit.register
def _close_open_services() -> None:
    for svc in list(_OPEN):
        svc.close()


def _error(status: int, message: str, hint: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


class _BodyLimit:
    """Refuses a body over ``MAX_BODY`` bytes with a 413 before anything parses it.  A plain
    ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task group per request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        size = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if size is not None and size.isdigit() and int(size) > MAX_BODY:
            return await self._refuse(f"Request body of {int(size):,} bytes", scope, receive, send)
        if size is None and scope["method"] in ("POST", "PUT", "PATCH"):  # chunked: read up to the limit
            chunks, total, more = [], 0, True
            while more:
                msg = await receive()
                if msg["type"] != "http.request":
                    return await self.app(scope, receive, send)
                chunks.append(msg.get("body", b""))
                total += len(chunks[-1])
                more = msg.get("more_body", False)
                if total > MAX_BODY:
                    return await self._refuse("A chunked request body", scope, receive, send)
            body, sent = b"".join(chunks), [False]

            async def replay():
                if sent[0]:
                    return await receive()
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}

            return await self.app(scope, replay, send)
        return await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(what: str, scope, receive, send) -> None:
        await _error(413, f"{what} is larger than {MAX_BODY:,} bytes.",
                     "Send one decision request per call.")(scope, receive, send)


def _auth(users: dict[str, access.User] | None, header: str | None):
    """A FastAPI dependency factory: ``need(grant)`` checks who asks and what they may do.

    Without users (a service on loopback only) everyone may do everything.  Otherwise the
    trusted proxy's header names the user (when ``header`` is set and present), or HTTP
    Basic gives name and password; a password's scrypt check runs once per credential (the
    result is kept, keyed by a hash of the credential)."""
    checked: dict[bytes, str] = {}
    challenge = {"WWW-Authenticate": 'Basic realm="Klartext", charset="UTF-8"'}

    def who(request: Request) -> access.User | None:
        if users is None:
            return None
        if header is not None and request.headers.get(header):
            user = users.get(request.headers[header])
            if user is None:
                raise StarletteHTTPException(403, f"User {request.headers[header]!r} (from {header}) is not in the "
                                                  "users file.")
            return user
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("basic "):
            raise StarletteHTTPException(401, "Sign-in required.", headers=challenge)
        try:
            name, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise StarletteHTTPException(401, "The Authorization header is not valid HTTP Basic.",
                                         headers=challenge) from None
        user = users.get(name)
        digest = hashlib.sha256(auth.encode()).digest()
        if user is not None and checked.get(digest) != user.password_hash:
            if user.password_hash == "-" or not access.check_password(user.password_hash, password):
                user = None
            else:
                checked[digest] = user.password_hash
        if user is None:
            raise StarletteHTTPException(401, "Unknown user or wrong password.", headers=challenge)
        return user

    def need(grant: str):
        def check(request: Request) -> access.User | None:
            user = who(request)
            if user is not None and not user.may(grant):
                raise StarletteHTTPException(403, f"User {user.name!r} ({user.role}) may not do this.")
            return user
        return check

    return need


class _Busy(Exception):
    """The request queue is full."""


def _error_handlers(app: FastAPI) -> None:
    """Every refusal in the documented shape ``{"error", "hint"}``, with its status."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        e = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        return _error(422, f"{where}: {e.get('msg')}", "Check the request against the OpenAPI spec at /docs.")

    @app.exception_handler(_Busy)
    async def busy(_request: Request, _exc: _Busy):
        return _error(503, "The service is at capacity; the request was not decided and nothing was logged.",
                      "Retry after the time in Retry-After.", {"Retry-After": "1"})

    @app.exception_handler(KlartextError)
    async def klartext_error(_request: Request, exc: KlartextError):
        status = (422 if isinstance(exc, InputError) else 409 if isinstance(exc, ConflictError)
                  else 503 if isinstance(exc, LogError) else 400)
        return _error(status, exc.message, exc.hint)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        # FastAPI's own refusals (unparsable body, unknown path, wrong method) in the documented shape
        hint = {400: "Send a JSON object encoded as UTF-8, nested at most a few levels.",
                404: "See the API at /docs.", 405: "See the API at /docs."}.get(exc.status_code)
        return _error(exc.status_code, str(exc.detail), hint, getattr(exc, "headers", None))

    @app.exception_handler(LookupError)
    async def unknown_decision(_request: Request, exc: LookupError):
        return _error(404, f"Decision {exc.args[0]!r} is not in the log.", "Send outcomes for logged decisions.")


class _Idempotency:
    """Answers to requests sent with an ``Idempotency-Key``, by (user, key): a retry of the
    same request (same body) gets the first answer and logs nothing new, also while the
    first is still in flight; the same key with another body is refused.  The newest
    100,000 keys are kept for the service's lifetime."""

    def __init__(self, keep: int = 100_000) -> None:
        self.keep = keep
        self.seen: OrderedDict[tuple[str, str], tuple[str, asyncio.Future]] = OrderedDict()

    async def answer(self, key: tuple[str, str], item: dict, decide) -> dict:
        fingerprint = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
        if key in self.seen:
            seen, fut = self.seen[key]
            if seen != fingerprint:
                raise InputError(f"Idempotency-Key {key[1]!r} was used for another request.",
                                 "Use a new key for each new request; repeat a key only to retry the same request.")
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self.seen[key] = (fingerprint, fut)
        while len(self.seen) > self.keep:
            self.seen.popitem(last=False)
        try:
            answer = await decide()
        except BaseException as exc:
            self.seen.pop(key, None)  # not decided: a retry may try again
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        fut.set_result(answer)
        return answer


def create_app(db: str, strategy_path: str | None = None, *, users: str | None = None,
               auth_header: str | None = None, **kw) -> FastAPI:
    """The HTTP API over one decision log (see the module docstring).  ``users``: a users file
    (:mod:`klartext.access`), required for every request when given; ``auth_header``: a header
    a trusted reverse proxy sets to the signed-in user's name."""
    strategy = load_strategy(strategy_path) if strategy_path else None
    need = _auth(access.load_users(users) if users else None, auth_header)
    state: dict[str, Service] = {}
    idempotent = _Idempotency()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # one service per app, however many times the lifespan is entered (test clients and
        # fuzzers may enter it again while it runs); closed when the last one leaves
        if "svc" not in state:
            state["svc"], state["users"] = Service(db, strategy, **kw), 0
        state["users"] += 1
        try:
            yield
        finally:
            state["users"] -= 1
            if state["users"] == 0:
                state.pop("svc").close()

    app = FastAPI(title="Klartext decision service", version="1",
                  description="Next-best-action decisions, each durable in the decision log before it is returned.",
                  lifespan=lifespan)

    app.add_middleware(_BodyLimit)
    app.state.service = lambda: state.get("svc")  # the running Service (for tests and embedding)

    _error_handlers(app)

    async def submit(kind: str, payload: dict) -> Any:
        svc = state["svc"]
        loop = asyncio.get_running_loop()
        job = _Job(kind, payload, loop.create_future(), loop)
        try:
            svc.queue.put_nowait(job)
        except queue.Full:
            raise _Busy() from None
        return await job.future

    @app.post("/decide", response_model=dict)
    async def decide(body: DecideIn, user: access.User | None = Depends(need("decide")),  # noqa: B008
                     idempotency_key: str | None = Header(default=None, max_length=200)) -> JSONResponse:  # noqa: B008
        """Decide for one customer interaction; returns after the decision is logged.

        With an ``Idempotency-Key`` header, a retry of the same request (same key, same body)
        gets the first answer and logs nothing new, also while the first is still in flight;
        the same key with another body is refused (422).  Keys are kept for the service's
        lifetime (the newest 100,000)."""
        item = body.model_dump()
        for k, v in item["features"].items():
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"features.{k} must be finite, got {v!r}.", f"Send a finite value for {k}.")
        s = state["svc"].strategy
        req = Requests.from_dicts(s, [{k: v for k, v in item.items() if v is not None}])
        if idempotency_key is None:
            # the answer is plain JSON types already: sent as it is (FastAPI's encoder would walk it)
            return JSONResponse(await submit("decide", (item, req, s.version)))
        return JSONResponse(await idempotent.answer((user.name if user else "", idempotency_key), item,
                                                    lambda: submit("decide", (item, req, s.version))))

    @app.post("/outcome")
    async def outcome(body: OutcomeIn, _user: access.User | None = Depends(need("decide"))) -> dict:  # noqa: B008
        """Record what happened after a decision."""
        # an unknown decision is refused on the log thread (404, see unknown_decision)
        return await submit("outcome", body.model_dump())

    @app.get("/decisions/{decision_id}")
    def get_decision(decision_id: str, user: access.User | None = Depends(need("decisions"))) -> dict:  # noqa: B008
        """The logged record of a decision with its explanation (the access is recorded)."""
        svc = state["svc"]
        try:
            svc.writer.wait_loaded()  # a decision answered a moment ago is in the file
            e = Explainer(svc.log, writer=svc.writer).explain(decision_id)
            out = e.to_dict()
        except LogError as exc:
            if svc.worker is None:
                return _error(404, exc.message, exc.hint)
            try:  # made by another worker, or before the service started: read from the whole log
                with svc.source() as whole:
                    e = Explainer(whole).explain(decision_id)
                    out = e.to_dict()
            except LogError as exc2:
                return _error(404, exc2.message, exc2.hint)
        with svc.log.register() as reg:  # recorded before it is answered: no view without its record
            reg.record_access(user.name if user else "local", "api", "decision", decision_id,
                              customer=e.decision.get("customer"))
            reviews = reg.reviews(decision_id).drop(columns=["customer"])
        out["reviews"] = reviews.to_dict("records")  # the review trail (GDPR Art. 22(3)), oldest first
        return json.loads(json.dumps(out, default=str))

    @app.post("/objection")
    def objection(body: ObjectionIn, user: access.User | None = Depends(need("decide"))) -> dict:  # noqa: B008
        """Record a customer's objection to direct marketing (GDPR Art. 21), or its withdrawal:
        every decision after the answer removes their marketing actions (rule ``objection``)."""
        svc = state["svc"]
        bad = [c for c in body.channels or [] if c not in svc.strategy.channel_ids]
        if bad:
            raise InputError(f"channels: {bad[0]!r} is not a channel of the strategy.",
                             f"Use one of: {', '.join(svc.strategy.channel_ids)}; leave channels out for all.")
        pseudo = str(svc.log.pseudonymise([body.customer_id])[0])
        with svc.log.register() as reg:
            when = reg.record_objection(pseudo, body.channels, user.name if user else "local", "api", body.note,
                                        withdrawn=body.withdraw)
        return {"customer": pseudo, "channels": body.channels, "withdrawn": body.withdraw,
                "recorded": when.isoformat()}

    @app.get("/health")
    def health(_user: access.User | None = Depends(need("aggregates"))) -> dict:  # noqa: B008
        svc = state["svc"]
        d = svc.deciders
        failed = svc.writer.load_error()
        if failed is not None:  # answered decisions wait in the journal: no new ones are taken
            return _error(503, failed.message, failed.hint)
        journal = svc.writer.journal_state()
        return {"status": "ok", "strategy_version": svc.strategy.version,
                "worker": None if svc.worker is None else {"k": svc.worker.k, "pid": os.getpid()},
                "lifecycle": {**lifecycle.describe(d.state), "deciding": [e.strategy.version for e in d.engines],
                              "follow": {k: v for k, v in svc.follow.items() if k != "stamp"}},
                "logged_since_start": svc.logged,
                "queue": svc.queue.qsize(), "groups_committed": svc.groups,
                "mean_group_size": round(svc.logged / svc.groups, 2) if svc.groups else None,
                "writer_seconds": {k: round(v, 3) for k, v in {**svc.seconds, **svc.writer.seconds}.items()},
                "journal": journal,
                "live_replicas": svc.replicator.status() if svc.replicator is not None else None,
                "other_workers": svc.log.peers.status() if svc.log.peers is not None else None}

    return app
