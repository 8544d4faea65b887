"""The real-time decision service: ``klartext serve`` (FastAPI + uvicorn).

The audit guarantee — a response is sent only after its decision record, with every
candidate row and its chain link, is committed:

* each request is validated on arrival (a bad one gets a 4xx naming the field and nothing
  is logged), then queued with a future;
* one writer thread owns the log: it takes what is queued (up to ``max_batch`` requests, or
  what arrives within ``max_wait_ms``), decides them in one vectorised engine call, appends
  them in **one transaction** (group commit), and only then resolves their futures;
* the queue is bounded: when it is full the request is refused at once with **503** and
  ``Retry-After`` — nothing is ever dropped silently; a request whose group could not be
  written gets a 503 that says it was not logged;
* after ``kill -9`` every acknowledged decision is in the log (DuckDB replays its WAL on the
  next open), and nothing half-written is: a group is one transaction.
"""

from __future__ import annotations

import asyncio
import json
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from decision_log import queries
from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.errors import InputError, KlartextError, LogError
from decisioning.inputs import Requests
from decisioning.strategy import STAGES, Strategy, load_strategy
from explain.api import Explainer

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
    payload: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    t0: float = field(default_factory=time.perf_counter)


class Service:
    """Owns the log, the engine and the writer thread."""

    def __init__(self, db: str, strategy: Strategy | None = None, *, max_queue: int = 2000, max_batch: int = 256,
                 max_wait_ms: float = 2.0) -> None:
        self.log = DecisionLog.open(db)
        self.strategy = strategy or self.log.load_strategy(self.log.latest_strategy_version())
        self.log.register_strategy(self.strategy)
        self.engine = Engine(self.strategy, self.log.latest_models_for(self.strategy))
        self.engine.prepare()
        for m in self.engine.models.models.values():  # deserialise every model now, not on a request
            _ = m.estimator
        self.log.register_models(self.engine.models)
        self.queue: queue.Queue[_Job] = queue.Queue(maxsize=max_queue)
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.logged = 0
        self.groups = 0
        self.seconds = {"decide": 0.0, "log": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="klartext-writer", daemon=True)
        self._thread.start()

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            jobs = [first]
            deadline = time.perf_counter() + self.max_wait
            while len(jobs) < self.max_batch:
                left = deadline - time.perf_counter()
                try:
                    jobs.append(self.queue.get(timeout=max(left, 0)) if left > 0 else self.queue.get_nowait())
                except queue.Empty:
                    break
            decides = [j for j in jobs if j.kind == "decide"]
            outcomes = [j for j in jobs if j.kind == "outcome"]
            if decides:
                self._decide(decides)
            for j in outcomes:
                self._outcome(j)

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

    def _decide(self, jobs: list[_Job]) -> None:
        s = self.strategy
        try:
            items = []
            for j in jobs:
                item = dict(j.payload)
                if item.get("contacts") is None or item.get("rejections") is None:
                    contacts, rejections = queries.contact_history(
                        self.log.con, self.log.pseudonymise([item["customer_id"]])[0], s)
                    item.setdefault("contacts", None)
                    item["contacts"] = contacts if item["contacts"] is None else item["contacts"]
                    item["rejections"] = rejections if item.get("rejections") is None else item["rejections"]
                items.append(item)
            t = time.perf_counter()
            req = Requests.from_dicts(s, items)
            batch = self.engine.decide(req)
            t2 = time.perf_counter()
            self.log.append(batch, s)  # one transaction: the group is durable when this returns
            self.seconds["decide"] += t2 - t
            self.seconds["log"] += time.perf_counter() - t2
            self.logged += len(jobs)
            self.groups += 1
        except Exception as exc:  # nothing of this group was written: every client is told
            err = LogError(f"The decision was not logged: {exc}", "Retry the request.") \
                if not isinstance(exc, KlartextError) else exc
            for j in jobs:
                self._resolve(j, error=err)
            return
        aids = s.action_ids
        for r, j in enumerate(jobs):
            ranked = [
                {"action_id": aids[a], "rank": int(batch.rank[r, a]), "priority": float(batch.priority[r, a]),
                 "propensity": float(batch.propensity[r, a]), "selected": bool(batch.selected[r, a])}
                for a in np.argsort(np.where(batch.rank[r] > 0, batch.rank[r], 10**9))[: int((batch.rank[r] > 0).sum())]
            ]
            self._resolve(j, {
                "decision_id": str(batch.decision_id[r]),
                "channel": j.payload["channel"],
                "chosen_actions": [aids[a] for a in batch.chosen[r]],
                "selection_probability": float(batch.selection_probability[r]),
                "explored": bool(batch.explored[r]),
                "ranked": ranked,
                "filtered": int(sum(1 for a in range(len(aids)) if STAGES[batch.stage[r, a]] not in ("ranked", "selected"))),
                "strategy_version": batch.strategy_version,
                "logged": True,
                "latency_ms": round((time.perf_counter() - j.t0) * 1000, 3),
            })

    def _outcome(self, job: _Job) -> None:
        import pandas as pd

        o = job.payload
        try:
            n = self.log.append_outcomes(pd.DataFrame([{
                "decision_id": o["decision_id"], "action_id": o.get("action_id"), "outcome": o["outcome"],
                "revenue": o.get("revenue", 0.0), "margin": o.get("margin", 0.0), "churned": o.get("churned"),
                "ts_us": int(time.time() * 1e6)}]))
            self._resolve(job, {"logged": n})
        except Exception as exc:
            self._resolve(job, error=exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.log.close()


def _error(status: int, message: str, hint: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


def create_app(db: str, strategy_path: str | None = None, **kw) -> FastAPI:
    """The HTTP API over one decision log (see the module docstring)."""
    strategy = load_strategy(strategy_path) if strategy_path else None
    state: dict[str, Service] = {}

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state["svc"] = Service(db, strategy, **kw)
        yield
        state["svc"].close()

    app = FastAPI(title="Klartext decision service", version="1",
                  description="Next-best-action decisions, each durable in the decision log before it is returned.",
                  lifespan=lifespan)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY:
            return _error(413, f"Request body of {int(size):,} bytes is larger than {MAX_BODY:,} bytes.",
                          "Send one decision request per call.")
        return await call_next(request)

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
        status = 422 if isinstance(exc, InputError) else 503 if isinstance(exc, LogError) else 400
        return _error(status, exc.message, exc.hint)

    @app.post("/decide")
    async def decide(body: DecideIn) -> dict:
        """Decide for one customer interaction; returns after the decision is logged."""
        item = body.model_dump()
        for k, v in item["features"].items():
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"features.{k} must be finite, got {v!r}.", f"Send a finite value for {k}.")
        Requests.from_dicts(state["svc"].strategy, [{k: v for k, v in item.items() if v is not None}])
        return await submit("decide", item)

    @app.post("/outcome")
    async def outcome(body: OutcomeIn) -> dict:
        """Record what happened after a decision."""
        svc = state["svc"]
        known = svc.log.con.cursor().execute("SELECT count(*) FROM decisions WHERE decision_id = ?",
                                             [body.decision_id]).fetchall()[0][0]
        if not known:
            return _error(404, f"Decision {body.decision_id!r} is not in the log.", "Send outcomes for logged decisions.")
        return await submit("outcome", body.model_dump())

    @app.get("/decisions/{decision_id}")
    def get_decision(decision_id: str) -> dict:
        """The logged record of a decision with its explanation."""
        svc = state["svc"]
        try:
            e = Explainer(svc.log).explain(decision_id)
        except LogError as exc:
            return _error(404, exc.message, exc.hint)
        return json.loads(json.dumps(e.to_dict(), default=str))

    @app.get("/health")
    def health() -> dict:
        svc = state["svc"]
        return {"status": "ok", "strategy_version": svc.strategy.version, "logged_since_start": svc.logged,
                "queue": svc.queue.qsize(), "groups_committed": svc.groups,
                "mean_group_size": round(svc.logged / svc.groups, 2) if svc.groups else None,
                "writer_seconds": {k: round(v, 3) for k, v in svc.seconds.items()}}

    return app
