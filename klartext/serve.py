"""The real-time decision service: ``klartext serve`` (FastAPI + uvicorn).

The audit guarantee — a response is sent only after its decision record, with every
candidate row and its chain link, is committed:

* each request is validated on arrival (a bad one gets a 4xx naming the field and nothing
  is logged) into a one-row :class:`~decisioning.inputs.Requests`, then queued with a future;
* a **decide thread** takes what is queued (up to ``max_batch`` requests, or what arrives
  within ``max_wait_ms``), decides the group in one vectorised engine call and turns it into
  the Arrow tables of the log (:func:`~decision_log.store.prepare`, hashes included);
* a **log thread** appends each prepared group in **one transaction** (group commit) and
  only then resolves its futures.  The two threads form a pipeline: the next group is being
  decided while the previous one is committed (DuckDB releases the GIL while it writes);
* the queue is bounded: when it is full the request is refused at once with **503** and
  ``Retry-After`` — nothing is ever dropped silently; a request whose group could not be
  written gets a 503 that says it was not logged;
* after ``kill -9`` every acknowledged decision is in the log (DuckDB replays its WAL on the
  next open), and nothing half-written is: a group is one transaction;
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
import queue
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from decision_log import queries
from decision_log.integrity import compile_assembly
from decision_log.live import Replicator
from decision_log.store import DecisionLog, PreparedBatch, prepare
from decisioning.engine import DecisionBatch, Engine
from decisioning.errors import ConflictError, InputError, KlartextError, LogError
from decisioning.forest import compile_walk
from decisioning.inputs import Requests
from decisioning.strategy import STAGES, Strategy, load_strategy
from explain.api import Explainer
from klartext import access

MAX_BODY = 64 * 1024


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


@dataclass
class _Job:
    kind: str  # decide | outcome
    payload: Any  # decide: (request dict, its validated one-row Requests); outcome: dict
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    t0: float = field(default_factory=time.perf_counter)


@dataclass
class _Group:
    jobs: list[_Job]
    batch: DecisionBatch | None = None
    prepared: PreparedBatch | None = None
    answers: list[dict] | None = None  #: made beside the decision; sent once the group is logged
    error: BaseException | None = None


class Service:
    """Owns the log, the engine, the decide and log threads and the replicator."""

    def __init__(self, db: str, strategy: Strategy | None = None, *, max_queue: int = 2000, max_batch: int = 256,
                 max_wait_ms: float = 2.0, replicate: bool = True, replica_interval_s: float = 1.0) -> None:
        self.log = DecisionLog.open(db)
        self.strategy = strategy or self.log.load_strategy(self.log.latest_strategy_version())
        self.log.register_strategy(self.strategy)
        self.engine = Engine(self.strategy, self.log.latest_models_for(self.strategy))
        self.engine.prepare()
        compile_walk()  # the models' compiled walk and the hash chain's byte assembly are ready
        compile_assembly()  # before the first request
        for m in self.engine.models.models.values():  # deserialise every model now, not on a request
            _ = m.estimator
        self.log.register_models(self.engine.models)
        # The models, strategy and tables live as long as the service: move them out of the
        # garbage collector's sight, so a full collection (which stops every thread) scans
        # only what requests allocate — no multi-millisecond pauses in the latency tail.
        gc.collect()
        gc.freeze()
        self.queue: queue.Queue[_Job] = queue.Queue(maxsize=max_queue)
        self._decided: queue.Queue[_Group | None] = queue.Queue()  # decide → log hand-over
        self._handoff = threading.Condition()
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.logged = 0
        self.groups = 0
        self.seconds = {"decide": 0.0, "log": 0.0}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._decide_loop, name="klartext-decide", daemon=True),
                         threading.Thread(target=self._log_loop, name="klartext-log", daemon=True)]
        for t in self._threads:
            t.start()
        self.replicator = Replicator(self.log, interval_s=replica_interval_s) if replicate and db != ":memory:" else None
        _OPEN.add(self)

    # -- the decide thread -----------------------------------------------------------------

    def _take(self) -> list[_Job] | None:
        try:
            first = self.queue.get(timeout=0.1)
        except queue.Empty:
            return None
        jobs = [first]
        deadline = time.perf_counter() + self.max_wait
        while len(jobs) < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                jobs.append(self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _decide_loop(self) -> None:
        reader = self.log.con.cursor()  # contact history reads, beside the log thread's writes
        while not self._stop.is_set():
            # Form the next group only once the log thread has taken the previous one: what
            # arrives while a group is committed goes into one group, not into many small ones.
            with self._handoff:
                self._handoff.wait_for(lambda: self._decided.empty() or self._stop.is_set(), timeout=0.1)
            jobs = self._take()
            if jobs is None:
                continue
            run: list[_Job] = []
            for j in jobs:  # keep arrival order: outcomes between decisions go in their place
                if j.kind == "decide":
                    run.append(j)
                    continue
                if run:
                    self._decided.put(self._decide(run, reader))
                    run = []
                self._decided.put(_Group([j]))
            if run:
                self._decided.put(self._decide(run, reader))
        self._decided.put(None)

    def _decide(self, jobs: list[_Job], reader) -> _Group:
        s = self.strategy
        group = _Group(jobs)
        try:
            t = time.perf_counter()
            parts = []
            for j in jobs:
                item, req = j.payload
                if item.get("contacts") is None or item.get("rejections") is None:  # fill from the log
                    contacts, rejections = queries.contact_history(reader, self.log.pseudonymise([item["customer_id"]])[0], s)
                    item = {**item, "contacts": contacts if item.get("contacts") is None else item["contacts"],
                            "rejections": rejections if item.get("rejections") is None else item["rejections"]}
                    req = Requests.from_dicts(s, [{k: v for k, v in item.items() if v is not None}])
                parts.append(req)
            group.batch = self.engine.decide(Requests.concat(parts))
            group.prepared = prepare(group.batch, s, self.log.pseudonymise(group.batch.requests.customer_id),
                                     con=reader)
            group.answers = self._answers(group)  # here: the log thread only commits and sends
            self.seconds["decide"] += time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - every client of the group is told
            group.error = exc
        return group

    # -- the log thread --------------------------------------------------------------------

    def _log_loop(self) -> None:
        while True:
            group = self._decided.get()
            with self._handoff:
                self._handoff.notify()
            if group is None:
                return
            if group.jobs[0].kind == "outcome":
                self._outcome(group.jobs[0])
                continue
            if group.error is None:
                t = time.perf_counter()
                try:
                    self.log.append_prepared(group.prepared)  # one transaction: durable when this returns
                except Exception as exc:  # noqa: BLE001
                    group.error = exc
                self.seconds["log"] += time.perf_counter() - t
            if group.error is not None:  # nothing of this group was written: every client is told
                exc = group.error
                err = exc if isinstance(exc, KlartextError) else LogError(
                    f"The decision was not logged: {exc}", "Retry the request.")
                for j in group.jobs:
                    self._resolve(j, error=err)
                continue
            self.logged += len(group.jobs)
            self.groups += 1
            self._answer(group)

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

    def _answers(self, group: _Group) -> list[dict]:
        """The answer to each request of a decided group (sent once the group is logged)."""
        batch, s = group.batch, self.strategy
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

    def _answer(self, group: _Group) -> None:
        for j, answer in zip(group.jobs, group.answers):
            answer["latency_ms"] = round((time.perf_counter() - j.t0) * 1000, 3)
            self._resolve(j, answer)

    def _outcome(self, job: _Job) -> None:
        import pandas as pd

        o = job.payload
        try:
            n = self.log.append_outcomes(pd.DataFrame([{
                "decision_id": o["decision_id"], "action_id": o.get("action_id"), "outcome": o["outcome"],
                "revenue": o.get("revenue", 0.0), "margin": o.get("margin", 0.0), "churned": o.get("churned"),
                "ts_us": int(time.time() * 1e6)}]), checked=True)
            self._resolve(job, {"logged": n, "duplicate": n == 0})
        except Exception as exc:  # noqa: BLE001
            self._resolve(job, error=exc)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
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


def create_app(db: str, strategy_path: str | None = None, *, users: str | None = None,
               auth_header: str | None = None, **kw) -> FastAPI:
    """The HTTP API over one decision log (see the module docstring).  ``users``: a users file
    (:mod:`klartext.access`), required for every request when given; ``auth_header``: a header
    a trusted reverse proxy sets to the signed-in user's name."""
    strategy = load_strategy(strategy_path) if strategy_path else None
    need = _auth(access.load_users(users) if users else None, auth_header)
    state: dict[str, Service] = {}
    idempotent: OrderedDict[tuple[str, str], tuple[str, asyncio.Future]] = OrderedDict()

    from contextlib import asynccontextmanager

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

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        e = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        return _error(422, f"{where}: {e.get('msg')}", "Check the request against the OpenAPI spec at /docs.")

    async def submit(kind: str, payload: dict) -> Any:
        svc = state["svc"]
        loop = asyncio.get_running_loop()
        job = _Job(kind, payload, loop.create_future(), loop)
        try:
            svc.queue.put_nowait(job)
        except queue.Full:
            raise _Busy() from None
        return await job.future

    class _Busy(Exception):
        pass

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
        req = Requests.from_dicts(state["svc"].strategy, [{k: v for k, v in item.items() if v is not None}])
        if idempotency_key is None:
            # the answer is plain JSON types already: sent as it is (FastAPI's encoder would walk it)
            return JSONResponse(await submit("decide", (item, req)))
        key = (user.name if user else "", idempotency_key)
        fingerprint = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
        if key in idempotent:
            seen, fut = idempotent[key]
            if seen != fingerprint:
                raise InputError(f"Idempotency-Key {idempotency_key!r} was used for another request.",
                                 "Use a new key for each new request; repeat a key only to retry the same request.")
            return JSONResponse(await asyncio.shield(fut))
        fut = asyncio.get_running_loop().create_future()
        idempotent[key] = (fingerprint, fut)
        while len(idempotent) > 100_000:
            idempotent.popitem(last=False)
        try:
            answer = await submit("decide", (item, req))
        except BaseException as exc:
            idempotent.pop(key, None)  # not decided: a retry may try again
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        fut.set_result(answer)
        return JSONResponse(answer)

    @app.post("/outcome")
    async def outcome(body: OutcomeIn, _user: access.User | None = Depends(need("decide"))) -> dict:  # noqa: B008
        """Record what happened after a decision."""
        # an unknown decision is refused on the log thread (404, see unknown_decision)
        return await submit("outcome", body.model_dump())

    @app.get("/decisions/{decision_id}")
    def get_decision(decision_id: str, _user: access.User | None = Depends(need("decisions"))) -> dict:  # noqa: B008
        """The logged record of a decision with its explanation."""
        svc = state["svc"]
        try:
            e = Explainer(svc.log).explain(decision_id)
        except LogError as exc:
            return _error(404, exc.message, exc.hint)
        return json.loads(json.dumps(e.to_dict(), default=str))

    @app.get("/health")
    def health(_user: access.User | None = Depends(need("aggregates"))) -> dict:  # noqa: B008
        svc = state["svc"]
        return {"status": "ok", "strategy_version": svc.strategy.version, "logged_since_start": svc.logged,
                "queue": svc.queue.qsize(), "groups_committed": svc.groups,
                "mean_group_size": round(svc.logged / svc.groups, 2) if svc.groups else None,
                "writer_seconds": {k: round(v, 3) for k, v in svc.seconds.items()},
                "live_replicas": svc.replicator.status() if svc.replicator is not None else None}

    return app
