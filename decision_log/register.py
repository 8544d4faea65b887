"""The compliance register beside a decision log: objections, erasures, reviews, accesses.

What the GDPR and the AI Act ask a reviewer to keep besides the decisions themselves lives
in ``<log>.compliance.duckdb``:

``objections``
    A customer's objection to direct marketing (GDPR Art. 21(2)–(3)), for all channels
    (``channels`` NULL) or some; a withdrawal is a row of its own (``withdrawn``).  Every
    later decision removes the marketing actions with the rule ``objection``.
``erasures``
    A customer erased at their request (Art. 17): their key destroyed
    (:mod:`decision_log.subjects`), how many decisions it sealed, and the destroyed
    key's id (the one its sealed values name).
``reviews``
    A person's review of one decision (Art. 22(3)): reviewed, contested, upheld or
    overridden, with their comment.
``strategy_steps``
    The strategy lifecycle (:mod:`decision_log.lifecycle`): each proposal (with the
    strategy's text), simulation (its figures), approval, activation (with the canary's
    share) and rollback, with who, when and why.
``access``
    Every view of a decision, a customer's history, a subject export or an erasure: who,
    when, through what, what, and why if they said.

A customer is named by their pseudonym only (the log's keyed HMAC), never by the raw id.

Every table is append-only and sealed like the log's own (:mod:`decision_log.seals`: a seal
chain of its own in this file), so ``klartext verify`` names a changed, added or deleted row.
It is a file of its own because those who write it are not the log's writer: a dashboard
records an access or a review while it reads the log read-only, and while a service holds
the log.  Each use opens it briefly (waiting while another process has it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from decision_log import seals
from decisioning.errors import InputError, LogError

#: The sealed tables and the expressions a row's digest reads.
TABLES: dict[str, list[str]] = {
    "meta": ["key", "value"],
    "objections": ["customer", "channels", "withdrawn", "epoch_us(ts)", "actor", "via", "note"],
    "erasures": ["customer", "epoch_us(ts)", "actor", "via", "reference", "decisions", "key_fingerprint"],
    "reviews": ["decision_id", "customer", "status", "epoch_us(ts)", "reviewer", "comment"],
    "access": ["epoch_us(ts)", "actor", "via", "what", "target", "customer", "why"],
    "verifications": ["epoch_us(ts)", "actor", "via", "ok", "decisions", "head_seq", "head_hash", "log_seal_seq",
                      "log_seal_hash", "seconds"],
    "strategy_steps": ["epoch_us(ts)", "step", "version", "actor", "via", "note", "share", "base_version", "text",
                       "detail"],
}
DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR, value VARCHAR, seal_seq BIGINT)",
    """CREATE TABLE IF NOT EXISTS objections (customer VARCHAR NOT NULL, channels VARCHAR[], withdrawn BOOLEAN NOT NULL,
       ts TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL, via VARCHAR NOT NULL, note VARCHAR, seal_seq BIGINT)""",
    """CREATE TABLE IF NOT EXISTS erasures (customer VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL,
       via VARCHAR NOT NULL, reference VARCHAR, decisions BIGINT NOT NULL, key_fingerprint VARCHAR,
       seal_seq BIGINT)""",
    """CREATE TABLE IF NOT EXISTS reviews (decision_id VARCHAR NOT NULL, customer VARCHAR, status VARCHAR NOT NULL,
       ts TIMESTAMPTZ NOT NULL, reviewer VARCHAR NOT NULL, comment VARCHAR, seal_seq BIGINT)""",
    """CREATE TABLE IF NOT EXISTS access (ts TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL, via VARCHAR NOT NULL,
       what VARCHAR NOT NULL, target VARCHAR, customer VARCHAR, why VARCHAR, seal_seq BIGINT)""",
    """CREATE TABLE IF NOT EXISTS verifications (ts TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL, via VARCHAR NOT NULL,
       ok BOOLEAN NOT NULL, decisions BIGINT NOT NULL, head_seq BIGINT, head_hash VARCHAR, log_seal_seq BIGINT,
       log_seal_hash VARCHAR, seconds DOUBLE, seal_seq BIGINT)""",
    """CREATE TABLE IF NOT EXISTS strategy_steps (ts TIMESTAMPTZ NOT NULL, step VARCHAR NOT NULL, version VARCHAR NOT NULL,
       actor VARCHAR NOT NULL, via VARCHAR NOT NULL, note VARCHAR, share DOUBLE, base_version VARCHAR, text VARCHAR,
       detail VARCHAR, seal_seq BIGINT)""",
    *seals.DDL[:1],
]
REVIEW_STATUSES = ("reviewed", "contested", "upheld", "overridden")
ACCESS_KINDS = ("decision", "customer", "subject_export", "erasure", "objection", "review", "access_log")
VIAS = ("cli", "dashboard", "api")
_MEMORY: dict[int, duckdb.DuckDBPyConnection] = {}  #: the registers of in-memory logs, by the log's id


def path_of(log_path: str) -> Path:
    """Where the register of the log at ``log_path`` is kept."""
    return Path(log_path + ".compliance.duckdb")


class Register:
    """An open register (use :func:`opened`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.con = con
        self.read_only = read_only

    # -- writing ------------------------------------------------------------------------

    def _write(self, tbl: str, rows: list[tuple]) -> None:
        if self.read_only:
            raise LogError("The compliance register is open read-only.", "Open it for writing.")
        with seals.sealed_write(self.con, tbl, tables=TABLES) as seq:
            cols = ", ".join(c for c in _columns(tbl))
            marks = ", ".join("?" for _ in range(len(_columns(tbl)) + 1))
            self.con.executemany(f"INSERT INTO {tbl} ({cols}, seal_seq) VALUES ({marks})",
                                 [(*r, seq) for r in rows])

    def record_objection(self, customer: str, channels: list[str] | None, actor: str, via: str,
                         note: str | None = None, withdrawn: bool = False) -> datetime:
        ts = _now()
        self._write("objections", [(customer, channels, withdrawn, ts, _who(actor), _via(via), note)])
        return ts

    def record_erasure(self, customer: str, actor: str, via: str, reference: str | None, decisions: int,
                       key_fingerprint: str | None) -> datetime:
        ts = _now()
        self._write("erasures", [(customer, ts, _who(actor), _via(via), reference, decisions, key_fingerprint)])
        return ts

    def record_review(self, decision_id: str, customer: str | None, status: str, reviewer: str,
                      comment: str | None) -> datetime:
        if status not in REVIEW_STATUSES:
            raise InputError(f"review status {status!r} is not one of {', '.join(REVIEW_STATUSES)}.",
                             "Mark a decision reviewed, contested, upheld or overridden.")
        ts = _now()
        self._write("reviews", [(decision_id, customer, status, ts, _who(reviewer), comment)])
        return ts

    def record_access(self, actor: str, via: str, what: str, target: str | None, customer: str | None = None,
                      why: str | None = None) -> datetime:
        if what not in ACCESS_KINDS:
            raise ValueError(f"unknown access kind {what!r}")
        ts = _now()
        self._write("access", [(ts, _who(actor), _via(via), what, target, customer, why)])
        return ts

    def record_verification(self, actor: str, via: str, ok: bool, decisions: int, head_seq: int | None,
                            head_hash: str | None, seal_head: tuple[int, str] | None, seconds: float) -> datetime:
        """A full ``verify`` of the log and its result: what later checks can start from."""
        ts = _now()
        self._write("verifications", [(ts, _who(actor), _via(via), ok, decisions, head_seq, head_hash,
                                       None if seal_head is None else seal_head[0],
                                       None if seal_head is None else seal_head[1], float(seconds))])
        return ts

    # -- reading ------------------------------------------------------------------------

    def last_verification(self) -> dict | None:
        """The newest full verification that passed (ts, actor, via, decisions, head_seq,
        head_hash, log_seal_seq, log_seal_hash, seconds), or None."""
        if not _has(self.con, "verifications"):
            return None
        res = self.con.execute("SELECT ts, actor, via, decisions, head_seq, head_hash, log_seal_seq, log_seal_hash, "
                               "seconds FROM verifications WHERE ok ORDER BY ts DESC LIMIT 1")
        row = res.fetchall()
        return dict(zip([c[0] for c in res.description], row[0])) if row else None

    def objections(self) -> dict[str, frozenset[str] | None]:
        """The standing objections: customer → the channels objected to (None: all), the union
        of the customer's objections not withdrawn since (:meth:`objection_periods`)."""
        state: dict[str, frozenset[str] | None] = {}
        for customer, channels, _start, until in self.objection_periods():
            if until is not None:
                continue
            held = state.get(customer, frozenset())
            state[customer] = None if channels is None or held is None else held | channels
        return state

    def objection_periods(self) -> list[tuple[str, frozenset[str] | None, datetime, datetime | None]]:
        """Every objection as (customer, channels or None for all, from, until — None while it stands)."""
        rows = self.con.execute("SELECT customer, channels, withdrawn, ts FROM objections ORDER BY seal_seq, ts"
                                ).fetchall()
        out: list = []
        open_: dict[str, list[int]] = {}
        for customer, channels, withdrawn, ts in rows:
            if withdrawn:
                for i in open_.pop(customer, []):
                    out[i] = (*out[i][:3], ts)
            else:
                open_.setdefault(customer, []).append(len(out))
                out.append((customer, None if channels is None else frozenset(channels), ts, None))
        return out

    def erasures(self) -> dict[str, datetime]:
        """customer → when they were (last) erased."""
        return {c: ts for c, ts in self.con.execute(
            "SELECT customer, max(ts) FROM erasures GROUP BY customer").fetchall()}

    def erasure_list(self) -> pd.DataFrame:
        return self.con.execute("SELECT ts, customer, actor, via, reference, decisions, key_fingerprint "
                                "FROM erasures ORDER BY ts").df()

    def _select(self, sql: str, equal: dict[str, Any], since: datetime | None = None, order: str = "ts",
                limit: int | None = None) -> pd.DataFrame:
        """``sql`` filtered on the columns of ``equal`` that are given (not None) and ``ts >= since``."""
        terms = [(f"{col} = ?", val) for col, val in equal.items() if val is not None]
        if since is not None:
            terms.append(("ts >= ?", since))
        if terms:
            sql += " WHERE " + " AND ".join(t for t, _ in terms)
        sql += f" ORDER BY {order}" + (f" LIMIT {int(limit)}" if limit is not None else "")
        return self.con.execute(sql, [v for _, v in terms]).df()

    def reviews(self, decision_id: str | None = None, status: str | None = None) -> pd.DataFrame:
        """Reviews (oldest first), of one decision or all; ``status``: only the decisions whose
        latest review has it (with their whole trail)."""
        df = self._select("SELECT ts, decision_id, customer, status, reviewer, comment FROM reviews",
                          {"decision_id": decision_id})
        if status is not None and len(df):
            latest = df.groupby("decision_id")["status"].last()
            df = df[df["decision_id"].isin(latest[latest == status].index)]
        return df

    def access_log(self, customer: str | None = None, actor: str | None = None, since: datetime | None = None,
                   limit: int | None = None) -> pd.DataFrame:
        """Accesses, newest first."""
        return self._select("SELECT ts, actor, via, what, target, customer, why FROM access",
                            {"customer": customer, "actor": actor}, since, "ts DESC", limit)

    def verify(self) -> seals.SealProblem | None:
        # a register of an earlier release, opened read-only, lacks the newer tables
        return seals.verify(self.con, {t: c for t, c in TABLES.items() if _has(self.con, t)})

    def head(self) -> tuple[int, str]:
        return seals.head(self.con)


def _has(con: duckdb.DuckDBPyConnection, tbl: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [tbl]
                            ).fetchall()[0][0])


def _columns(tbl: str) -> list[str]:
    return [c.replace("epoch_us(", "").rstrip(")") for c in TABLES[tbl]]


def _now() -> datetime:
    return datetime.now(UTC)


def _who(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise InputError("who did this is not given.", "Name yourself with --by NAME (the dashboard uses your sign-in).")
    return actor[:200]


def _via(via: str) -> str:
    if via not in VIAS:
        raise ValueError(f"unknown channel of access {via!r}")
    return via


@contextmanager
def opened(log_path: str, read_only: bool = False, wait_s: float = 15.0, memory_key: int | None = None
           ) -> Iterator[Register | None]:
    """The register of the log at ``log_path``, open for the ``with`` block; ``read_only``
    yields None where there is none yet (nothing was ever recorded).  An in-memory log
    (``:memory:``) keeps its register in memory, under ``memory_key``."""
    if log_path == ":memory:":
        con = _MEMORY.get(memory_key)
        if con is None:
            con = _MEMORY[memory_key] = duckdb.connect()
            for stmt in DDL:
                con.execute(stmt)
        yield Register(con, read_only)
        return
    path = path_of(log_path)
    if read_only and not path.exists():
        yield None
        return
    # one use at a time within this process: DuckDB refuses a read-only and a read-write
    # connection to one file side by side in a process (a service's decide thread re-reads
    # objections while a request records one, and its follower reads the strategy steps)
    with _lock_for(path):
        con = _connect(path, read_only, wait_s)
        try:
            if not read_only:
                for stmt in DDL:
                    con.execute(stmt)
            yield Register(con, read_only)
        finally:
            con.close()


_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.RLock:
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())


def _connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise LogError(f"The compliance register {path} is in use by another process.",
                               "Another Klartext command is recording in it right now: run this again.") from exc
            time.sleep(0.05)
        except duckdb.Error as exc:
            raise LogError(f"Cannot open the compliance register {path}: {exc}",
                           "It is a DuckDB file kept beside the log; restore it from your backup.") from exc
