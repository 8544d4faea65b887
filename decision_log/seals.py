"""The seal over every table besides the decision chain: outcomes, strategies, models, meta.

Each write to one of these tables stamps its rows with the next ``seal_seq`` and appends one
entry to the ``seals`` table: how many rows it wrote, the digest of those rows, and a hash
chained over all earlier entries.  :func:`verify` recomputes every row's digest from the
table itself, so an edited, added or deleted row (or an edited entry) is named; signed
checkpoints (:mod:`decision_log.checkpoints`) anchor the head of this chain beside the
decision chain's, so re-chaining after an edit is caught too.

A row's digest is the SHA-256 of its values as JSON (timestamps as epoch microseconds, blobs
as their SHA-256); a write's digest is the SHA-256 of its rows' digests in sorted order, so
it does not depend on the order in which DuckDB returns rows.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

GENESIS = "0" * 64

#: The sealed tables and the expressions a row's digest reads (in this order).
TABLES: dict[str, list[str]] = {
    "meta": ["key", "value"],
    "strategies": ["version", "name", "text", "epoch_us(first_used)"],
    "models": ["version", "action_id", "algorithm", "features", "training_fingerprint", "metrics::VARCHAR",
               "artifact", "format", "epoch_us(created)", "input::VARCHAR", "artifact_sha256"],
    "outcomes": ["decision_id", "action_id", "outcome", "revenue", "margin", "churned", "epoch_us(ts)"],
    "stages": ["source", "stage", "stage_group", "stage_order"],
}

DDL = [
    """
    CREATE TABLE IF NOT EXISTS seals (
        seq BIGINT NOT NULL,
        tbl VARCHAR NOT NULL,
        n_rows BIGINT NOT NULL,
        digest VARCHAR NOT NULL,
        chain_hash VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL
    )
    """,
    *[f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS seal_seq BIGINT" for t in TABLES],
]


def _plain(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(bytes(v)).hexdigest()
    if isinstance(v, float):
        return repr(v) if not math.isfinite(v) else v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def row_digest(values: tuple) -> str:
    return hashlib.sha256(json.dumps([_plain(v) for v in values], separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def write_digest(row_digests: list[str]) -> str:
    return hashlib.sha256("".join(sorted(row_digests)).encode()).hexdigest()


def link(prev: str, seq: int, tbl: str, n_rows: int, digest: str) -> str:
    return hashlib.sha256(f"{prev}|{seq}|{tbl}|{n_rows}|{digest}".encode()).hexdigest()


def head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """(seq, chain hash) of the newest entry; (0, GENESIS) when there is none."""
    row = con.execute("SELECT seq, chain_hash FROM seals ORDER BY seq DESC LIMIT 1").fetchall()
    return (int(row[0][0]), row[0][1]) if row else (0, GENESIS)


def _rows(con: duckdb.DuckDBPyConnection, tbl: str, where: str = "", params: list | None = None,
          tables: dict[str, list[str]] | None = None) -> list[tuple]:
    cols = (tables or TABLES)[tbl]
    return con.execute(f"SELECT seal_seq, {', '.join(cols)} FROM {tbl} {where}", params or []).fetchall()


def seal(con: duckdb.DuckDBPyConnection, tbl: str, seq: int, tables: dict[str, list[str]] | None = None) -> int:
    """Append the entry for the rows of ``tbl`` stamped ``seq`` (written by the caller in the
    same transaction); returns how many rows it covers (no entry for none).  ``tables``: the
    sealed tables of this file (default: the decision log's, :data:`TABLES`)."""
    rows = _rows(con, tbl, "WHERE seal_seq = ?", [seq], tables)
    if not rows:
        return 0
    last, prev = head(con)
    if seq != last + 1:
        raise ValueError(f"seal sequence {seq} does not follow {last}")
    digest = write_digest([row_digest(r[1:]) for r in rows])
    con.execute("INSERT INTO seals VALUES (?, ?, ?, ?, ?, ?)",
                [seq, tbl, len(rows), digest, link(prev, seq, tbl, len(rows), digest), datetime.now(UTC)])
    return len(rows)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, in_transaction: bool = False) -> Iterator[None]:
    """One transaction around the ``with`` block, committed at its end and rolled back when it
    raises; with ``in_transaction`` the block is part of the caller's, which does both."""
    if in_transaction:
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise


@contextmanager
def sealed_write(con: duckdb.DuckDBPyConnection, tbl: str, in_transaction: bool = False,
                 tables: dict[str, list[str]] | None = None) -> Iterator[int]:
    """One sealed write to ``tbl``: yields the seal number to stamp the new rows with, then
    appends its seal entry, all in one transaction (the caller's, with ``in_transaction``)."""
    with transaction(con, in_transaction):
        seq = head(con)[0] + 1
        yield seq
        seal(con, tbl, seq, tables)


def insert_meta(con: duckdb.DuckDBPyConnection, key: str, value: str, in_transaction: bool = False) -> None:
    """A new ``meta`` entry, sealed (in the caller's transaction, with ``in_transaction``); a key
    that exists already is refused by the table's primary key."""
    with sealed_write(con, "meta", in_transaction) as seq:
        con.execute("INSERT INTO meta (key, value, seal_seq) VALUES (?, ?, ?)", [key, value, seq])


def put_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    """A ``meta`` entry, written once (kept as it is when the key exists) and sealed."""
    if not con.execute("SELECT count(*) FROM meta WHERE key = ?", [key]).fetchall()[0][0]:
        insert_meta(con, key, value)


def seal_unstamped(con: duckdb.DuckDBPyConnection) -> None:
    """Seal the rows a log of an earlier release holds (no ``seal_seq`` yet), once, when the
    seals table is first made: from then on only Klartext's own writes are sealed."""
    for tbl in TABLES:
        seq = head(con)[0] + 1
        con.execute(f"UPDATE {tbl} SET seal_seq = ? WHERE seal_seq IS NULL", [seq])
        seal(con, tbl, seq)


@dataclass
class SealProblem:
    table: str
    problem: str


def verify(con: duckdb.DuckDBPyConnection, tables: dict[str, list[str]] | None = None,
           since: tuple[int, str] | None = None) -> SealProblem | None:
    """The first problem in the sealed tables (``tables``, default :data:`TABLES`), or None
    when every row is as it was written.  ``since`` (seq, chain hash) of an earlier full
    check: the whole seal chain is still checked and must pass through it, but only the rows
    of later writes are re-read."""
    tables = tables or TABLES
    entries = con.execute("SELECT seq, tbl, n_rows, digest, chain_hash FROM seals ORDER BY seq").fetchall()
    prev, expect = GENESIS, 1
    by_seq = {}
    after = 0
    if since is not None and since[0] > 0:
        hit = [e for e in entries if e[0] == since[0]]
        if not hit or hit[0][4] != since[1]:
            return SealProblem("seals", f"the seal chain no longer passes through the head verified earlier (entry "
                                        f"{since[0]}, {since[1][:16]}…)")
        after = since[0]
    for seq, tbl, n_rows, digest, chain_hash in entries:
        if seq != expect:
            return SealProblem("seals", f"entry {expect} of the seal chain is missing (found {seq} next)")
        if link(prev, seq, tbl, n_rows, digest) != chain_hash:
            return SealProblem("seals", f"entry {seq} (table {tbl}) does not follow from the one before it "
                                        "(the seal chain was altered)")
        by_seq[seq] = (tbl, n_rows, digest)
        prev, expect = chain_hash, seq + 1
    for tbl in tables:
        groups: dict[Any, list[str]] = {}
        where = "WHERE seal_seq IS NULL OR seal_seq > ?" if after else ""
        for r in _rows(con, tbl, where, [after] if after else None, tables=tables):
            groups.setdefault(r[0], []).append(row_digest(r[1:]))
        for seq, digests in groups.items():
            if seq is None or seq not in by_seq or by_seq[seq][0] != tbl:
                return SealProblem(tbl, f"{len(digests)} row(s) of {tbl} were added outside Klartext "
                                        "(they belong to no sealed write)")
        for seq, (t, n_rows, digest) in by_seq.items():
            if t != tbl or seq <= after:
                continue
            got = groups.get(seq, [])
            if len(got) != n_rows:
                return SealProblem(tbl, f"write {seq} to {tbl} had {n_rows} row(s), the table now holds {len(got)} "
                                        "of them (rows were deleted or added)")
            if write_digest(got) != digest:
                return SealProblem(tbl, f"a row of {tbl} written by write {seq} was changed")
    return None
