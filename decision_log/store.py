"""Open, write and read the decision log (one DuckDB file).

Writes are batched: a whole :class:`~decisioning.engine.DecisionBatch` goes in as Arrow
tables in one transaction — its decisions, one candidate row per action of the catalog per
decision, and the hash-chain entries — so a decision is either logged completely or not at
all.  (``executemany`` manages about 330 decisions/s on this machine; Arrow batches tens of
thousands.)

Only one process may hold a DuckDB file read-write, and while it does no other process can
open it at all; open read-only (``read_only=True``) to share a finished log between readers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from decision_log import integrity, live, record, seals
from decision_log.schema import DDL, SCHEMA_VERSION, has_column, has_table
from decisioning.engine import DecisionBatch
from decisioning.errors import ConflictError, InputError, LogError, LogInUse
from decisioning.models import ModelSet, PropensityModel
from decisioning.strategy import STAGES, Strategy, parse_strategy

KEY_ENV = "KLARTEXT_PSEUDONYM_KEY"
#: Largest revenue or margin of one outcome (in the strategy's currency).
MAX_AMOUNT = 1e9


def parse_key(text: str, where: str) -> bytes:
    """A pseudonym key from its hex text (the ``.key`` file's format, also for the variable)."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) < 16:
        raise LogError(f"{where} is not a pseudonym key: expected at least 32 hex digits, got {len(text.strip())} "
                       "characters.",
                       "Use the hex content of the log's .key file; for a new log, "
                       "`python -c 'import secrets; print(secrets.token_hex(32))'` makes one.")
    return key


def key_id(key: bytes) -> str:
    """A public fingerprint of a pseudonym key (recorded in ``meta``; reveals nothing of it)."""
    return hmac.new(key, b"klartext pseudonym key id", "sha256").hexdigest()[:16]


def _first(result: duckdb.DuckDBPyConnection) -> tuple | None:
    """First row of a result (fetching everything, so the connection is free afterwards)."""
    rows = result.fetchall()
    return rows[0] if rows else None


def _arrow(result: duckdb.DuckDBPyConnection) -> pa.Table:
    """An executed query's result as Arrow.  ``execute`` binds a query once where ``con.sql``
    binds it twice (~2 ms on a small batch); the extra copy DuckDB warns about is cheaper."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
        return result.to_arrow_table()


def _dict_array(codes: np.ndarray, dictionary: list[str] | np.ndarray | pa.Array,
                null_below_zero: bool = False) -> pa.Array:
    codes = np.asarray(codes)
    mask = codes < 0 if null_below_zero else None
    idx = pa.array(np.where(codes < 0, 0, codes).astype(np.int32), mask=mask)
    values = dictionary if isinstance(dictionary, pa.Array) else pa.array(list(dictionary), pa.string())
    return pa.DictionaryArray.from_arrays(idx, values)


def _repeated(text: str, n: int) -> pa.Array:
    """A string array of ``n`` copies of ``text``, built from its buffers."""
    raw = text.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(raw)
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)]).cast(
        pa.string())


def _rejections_json(count: np.ndarray, days: np.ndarray, aids: tuple[str, ...]) -> np.ndarray:
    """Each row's rejection history as the JSON object ``json.dumps`` writes for
    ``{action: {"count": k, "days_since_last": d}}`` (the actions rejected, in catalogue
    order; ``"{}"`` where none), formatted in one pass over the rejected cells."""
    out = np.full(len(count), "{}", dtype=object)
    rr, jj = np.nonzero(count)
    if not len(rr):
        return out
    d = days[rr, jj]
    if not np.isfinite(d).all():  # json.dumps writes NaN / Infinity its own way
        for r in np.unique(rr).tolist():
            js = np.flatnonzero(count[r])
            out[r] = json.dumps({aids[j]: {"count": int(count[r, j]), "days_since_last": float(days[r, j])} for j in js})
        return out
    keys = [json.dumps(a) for a in aids]
    parts = [f'{keys[j]}: {{"count": {k}, "days_since_last": {x!r}}}'
             for j, k, x in zip(jj.tolist(), count[rr, jj].astype(np.int64).tolist(), d.astype(np.float64).tolist())]
    rows, starts = np.unique(rr, return_index=True)
    ends = np.append(starts[1:], len(rr))
    for r, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist()):
        out[r] = "{" + ", ".join(parts[a:b]) + "}"
    return out


def _float_array(x: np.ndarray) -> pa.Array:
    x = np.ascontiguousarray(x, dtype=np.float64)
    nan = np.isnan(x)
    return pa.array(x, mask=nan if nan.any() else None)


class DecisionLog:
    """A decision log in one DuckDB file.  Open it with :meth:`open`.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection (owned by this object).
    path : str
        The database path (``:memory:`` for a throw-away log).
    key : bytes
        The HMAC key for customer pseudonyms; never written to the database.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, key: bytes | None, read_only: bool) -> None:
        self.con = con
        self.path = path
        self._key = key
        self.read_only = read_only
        self._model_cache: dict[tuple[str, str], PropensityModel] = {}
        # Only one process can hold the file read-write, so the chain head and the registered
        # strategies can be cached here after the first read.
        self._head: tuple[int, str] | None = None
        self._registered: set[str] = set()
        self._atomic = False  #: inside :meth:`atomic`: appends join its transaction
        #: Engines that replayed decisions of this log, by (strategy version, model versions):
        #: reused, so each model is deserialised and flattened once (decision_log.replay).
        self.engines: dict[tuple[str, str], Any] = {}
        self._strategy_cache: dict[str, Strategy] = {}
        #: Set when this is a live replica of a log a service holds (see :mod:`decision_log.live`).
        self.replica: live.ReplicaInfo | None = None

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, create: bool = True) -> DecisionLog:
        """Open (and, unless ``read_only``, create) the log at ``path``.

        Raises
        ------
        LogError
            If the file is missing (read-only / ``create=False``), locked by another process,
            or not a Klartext log.
        """
        path = str(path)
        if path != ":memory:" and not Path(path).exists() and (read_only or not create):
            raise LogError(f"No decision log at {path!r}.",
                           "Create one with `klartext demo --db " + path + "`.")
        try:
            con = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            msg = str(exc)
            if "lock" in msg.lower() and read_only:  # a service holds it: read its freshest replica
                replica = cls.open_live(path)
                if replica is not None:
                    return replica
            if "lock" in msg.lower():
                raise LogInUse(f"The decision log {path!r} is in use by another process.",
                               "DuckDB lets one process write a file: stop the dashboard (`klartext app`, or "
                               "the demo's) or wait for the job that holds it, then run this again. A running "
                               "`klartext serve` keeps a live replica for readers: it appears a few seconds "
                               "after the service starts.") from exc
            raise LogError(f"Cannot open decision log {path!r}: {msg}",
                           "Check that the path is a DuckDB file written by Klartext.") from exc
        except duckdb.Error as exc:
            raise LogError(f"Cannot open decision log {path!r}: {exc}",
                           "Check that the path is a DuckDB file written by Klartext.") from exc
        if not read_only:
            # The log only appends.  A checkpoint's vacuum would merge the partly filled row
            # groups that every bulk transaction leaves, re-compressing them: half of all
            # DuckDB work when logging a large batch, for a slightly smaller file.
            con.execute("SET max_vacuum_tasks = 0")
            had_seals = has_table(con, "seals")
            for stmt in DDL + seals.DDL:
                con.execute(stmt)
            if not had_seals:  # a log of an earlier release: seal what it holds, once
                seals.seal_unstamped(con)
            _number_candidates(con)
            _put_meta(con, "schema_version", str(SCHEMA_VERSION))
        else:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if "decisions" not in tables:
                con.close()
                raise LogError(f"{path!r} is not a Klartext decision log (it has no 'decisions' table).",
                               "Create one with `klartext demo --db " + path + "`.")
        try:
            key = cls._checked_key(con, path, read_only)
        except LogError:
            con.close()
            raise
        return cls(con, path, key, read_only)

    @classmethod
    def _checked_key(cls, con: duckdb.DuckDBPyConnection, path: str, read_only: bool) -> bytes | None:
        """The log's pseudonym key, checked against the key id the log recorded with its first
        key.  A new key is made only for a log that holds no decision yet: a replaced key
        would give every customer a new pseudonym (and reset their contact caps)."""
        stored = _first(con.execute("SELECT value FROM meta WHERE key = 'key_id'"))
        stored = stored[0] if stored else None
        fresh = stored is None and not con.execute("SELECT count(*) FROM (SELECT 1 FROM decisions LIMIT 1)"
                                                   ).fetchall()[0][0]
        key = cls._load_key(path, create=not read_only and fresh)
        if key is None:
            if read_only:
                return None  # views work; raw-id lookups say the key is missing
            raise LogError(f"The pseudonym key of the log {path!r} is missing (no {path}.key, no ${KEY_ENV}).",
                           f"Restore {path}.key from your backup (or set ${KEY_ENV} to its hex content). Klartext "
                           "does not make a new key for a log that holds decisions: every customer would get a "
                           "new pseudonym and their contact caps would start again.")
        kid = key_id(key)
        if stored is None:
            if not read_only and path != ":memory:":
                _put_meta(con, "key_id", kid)
        elif stored != kid:
            raise LogError(f"The pseudonym key given for {path!r} (key id {kid}) is not the key this log was "
                           f"written with (key id {stored}).",
                           f"Use the log's own {path}.key (or its hex content in ${KEY_ENV}).")
        return key

    @classmethod
    def open_live(cls, path: str | Path, newer_than: int = -1) -> DecisionLog | None:
        """The freshest live replica of a log that ``klartext serve`` holds, read-only (see
        :mod:`decision_log.live`); None when no service keeps one newer than ``newer_than``."""
        found = live.open_replica(path, newer_than)
        if found is None:
            return None
        log = cls(found[0], str(path), cls._load_key(str(path), create=False), read_only=True)
        log.replica = found[1]
        return log

    @staticmethod
    def _load_key(path: str, create: bool) -> bytes | None:
        """The key from ``$KLARTEXT_PSEUDONYM_KEY`` or ``<log>.key``: one format for both, hex
        of at least 16 bytes; a new random one only when ``create``."""
        env = os.environ.get(KEY_ENV)
        if env:
            return parse_key(env, f"${KEY_ENV}")
        if path == ":memory:":
            return secrets.token_bytes(32)
        key_path = Path(path + ".key")
        if key_path.exists():
            return parse_key(key_path.read_text(), str(key_path))
        if not create:
            return None
        key = secrets.token_bytes(32)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        return key

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- pseudonyms -------------------------------------------------------------------------

    def pseudonymise(self, customer_ids: np.ndarray | list[str]) -> np.ndarray:
        """Keyed HMAC-SHA256 pseudonyms (32 hex digits) of raw customer ids."""
        if self._key is None:
            raise LogError(
                f"The pseudonym key for {self.path!r} is not available, so raw customer ids cannot be matched.",
                f"Set {KEY_ENV} or put the key file {self.path}.key next to the log.",
            )
        return np.array(integrity.hmac_hex(self._key, [str(c) for c in customer_ids], 32), dtype=object)

    # -- registry ---------------------------------------------------------------------------

    def register_strategy(self, strategy: Strategy, in_transaction: bool = False) -> str:
        if strategy.version in self._registered:
            return strategy.version
        with _sealed_write(self.con, "strategies", in_transaction or self._atomic) as seq:
            self.con.execute(
                "INSERT OR IGNORE INTO strategies (version, name, text, first_used, seal_seq) VALUES (?, ?, ?, ?, ?)",
                [strategy.version, strategy.name, strategy.text, datetime.now(UTC), seq],
            )
        self._registered.add(strategy.version)
        return strategy.version

    def register_models(self, models: ModelSet) -> dict[str, str]:
        rows = []
        known = {tuple(r) for r in self.con.execute("SELECT version, action_id FROM models").fetchall()}
        now = datetime.now(UTC)
        for action_id, m in sorted(models.models.items()):
            if (m.version, action_id) in known:
                continue
            blob = m.to_bytes()
            rows.append({
                "version": m.version, "action_id": action_id, "algorithm": m.algorithm,
                "features": list(m.features), "training_fingerprint": m.training_fingerprint,
                "metrics": json.dumps(m.metrics), "artifact": blob, "format": "skops",
                "created": now, "input": json.dumps(m.input) if m.input else None,
                "artifact_sha256": hashlib.sha256(blob).hexdigest(),
            })
        if rows:
            tbl = pa.Table.from_pylist(rows)  # noqa: F841 - read by DuckDB below
            with _sealed_write(self.con, "models") as seq:
                self.con.execute("INSERT INTO models (version, action_id, algorithm, features, training_fingerprint, "
                                 "metrics, artifact, format, created, input, artifact_sha256, seal_seq) SELECT "
                                 "version, action_id, algorithm, features, training_fingerprint, metrics::JSON, "
                                 "artifact, format, created, input::JSON, artifact_sha256, ? FROM tbl", [seq])
        return models.versions()

    def load_strategy(self, version: str) -> Strategy:
        if version not in self._strategy_cache:
            row = _first(self.con.cursor().execute("SELECT text FROM strategies WHERE version = ?", [version]))
            if row is None:
                raise LogError(f"Strategy version {version!r} is not in the log {self.path!r}.",
                               "The log only replays decisions whose strategy it holds.")
            self._strategy_cache[version] = parse_strategy(row[0], source=f"strategy {version} (from the log)")
        return self._strategy_cache[version]

    def _model_column(self, name: str) -> str:
        """``name`` if the models table has that column (a read-only log of an older release
        may lack it), else ``NULL``."""
        return name if has_column(self.con.cursor(), "models", name) else "NULL"

    def load_models(self, versions: dict[str, str]) -> ModelSet:
        out = {}
        for action_id, version in versions.items():
            key = (version, action_id)
            if key not in self._model_cache:
                row = _first(self.con.cursor().execute(
                    f"SELECT artifact, features, training_fingerprint, metrics, algorithm, "
                    f"{self._model_column('input')}, {self._model_column('artifact_sha256')} "
                    "FROM models WHERE version = ? AND action_id = ?", [version, action_id]))
                if row is None:
                    raise LogError(f"Model version {version!r} of action {action_id!r} is not in the log {self.path!r}.",
                                   "Register the model before logging decisions made with it.")
                if row[6] is not None and hashlib.sha256(row[0]).hexdigest() != row[6]:
                    raise LogError(f"The stored artifact of model {version!r} (action {action_id!r}) does not match "
                                   f"its registered SHA-256 {row[6][:16]}…; it was not loaded.",
                                   "The models table was changed after registration: run `klartext verify` and "
                                   "restore the log from a trusted copy.")
                self._model_cache.setdefault(key, PropensityModel.from_bytes(
                    row[0], action_id, tuple(row[1]), row[2], json.loads(row[3]), row[4], version=version,
                    input=json.loads(row[5]) if row[5] else None))  # (one object if two threads load it)
            out[action_id] = self._model_cache[key]
        return ModelSet(out)

    def latest_strategy_version(self) -> str:
        row = _first(self.con.execute("SELECT version FROM strategies ORDER BY first_used DESC LIMIT 1"))
        if row is None:
            imported = self.con.execute("SELECT list(DISTINCT source ORDER BY source), count(*) FROM decisions "
                                        "WHERE source <> 'klartext'").fetchall()[0]
            if imported[1]:
                raise LogError(
                    f"The log {self.path!r} holds only imported decisions ({imported[1]:,}, from "
                    f"{', '.join(imported[0])}) and no Klartext strategy: this view re-decides with a strategy's "
                    "weights, levers and models, which an imported log does not have.",
                    "Views that need no strategy work on it: `klartext funnel`, `klartext explain ID` (the logged "
                    "stages and factors, why A and not B), `klartext decisions`, `klartext verify`, and the "
                    "dashboard's Overview, Funnel and Decision replay pages.")
            raise LogError(f"The log {self.path!r} holds no strategy yet.",
                           "Make decisions first: `klartext demo`, or `klartext run` with your strategy.")
        return row[0]

    def latest_models_for(self, strategy: Strategy) -> ModelSet:
        rows = self.con.execute(
            "SELECT action_id, arg_max(version, created) FROM models WHERE action_id IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY action_id", [list(strategy.action_ids)]).fetchall()
        versions = dict(rows)
        missing = [a for a in strategy.action_ids if a not in versions]
        if missing:
            raise LogError(f"The log {self.path!r} holds no model for action {missing[0]!r}.",
                           "Train and register models for this strategy (`klartext demo` does it for the demo).")
        return self.load_models(versions)

    # -- writing ----------------------------------------------------------------------------

    def _next_seq(self) -> tuple[int, str]:
        if self._head is None:
            row = _first(self.con.execute("SELECT seq, chain_hash FROM chain ORDER BY seq DESC LIMIT 1"))
            self._head = (0, integrity.GENESIS) if row is None else (int(row[0]), row[1])
        return self._head

    def next_seq(self) -> int:
        """The sequence number the next logged decision gets (this object writes alone)."""
        return self._next_seq()[0] + 1

    def append(self, batch: DecisionBatch, strategy: Strategy, source: str = "klartext",
               customers: np.ndarray | None = None) -> int:
        """Log a batch of decisions with all their candidates, atomically.

        ``customers`` may pass ready pseudonyms; otherwise the raw ids in the batch's
        requests are pseudonymised here.  Returns the number of decisions written.
        """
        pseudo = customers if customers is not None else self.pseudonymise(batch.requests.customer_id)
        return self.append_prepared(prepare(batch, strategy, pseudo, source))

    def append_prepared(self, prepared: PreparedBatch) -> int:
        """Log a batch made ready by :func:`prepare` (which needs no connection, so a
        pipeline can prepare the next batch while this one is written)."""
        if self.read_only:
            raise LogError(f"The log {self.path!r} is open read-only.", "Open it without read_only to write.")
        n, strategy = prepared.n, prepared.strategy
        if n == 0:
            return 0
        # The Arrow tables below are read by DuckDB's replacement scan of this frame's locals
        # (cheaper per statement than register/unregister, which matters for a live service's
        # small groups); statements go through execute(), which binds a query once.
        _k_cand = prepared.candidates
        con = self.con
        register = strategy is not None and strategy.version not in self._registered
        begun = False
        try:
            last_seq, prev = self._next_seq()
            seq = np.arange(last_seq + 1, last_seq + 1 + n, dtype=np.int64)
            if prepared.typed is not None:  # typed and hashed by prepare(): only the sequence numbers are new
                _k_typed = _json_columns(prepared.typed.add_column(0, "seq", pa.array(seq)))
                row_digests = (prepared.row_digests if prepared.row_digests is not None
                               and prepared.first_seq == last_seq + 1
                               else integrity.digests_with_seq(seq, prepared.tails))
            else:
                _k_dec = prepared.decisions.append_column("seq", pa.array(seq))
                _k_typed = _arrow(con.execute(_TYPED_DECISIONS if "inputs" not in _k_dec.column_names
                                               else _TYPED_IMPORTED))
                row_digests = integrity.decision_digests(_k_typed)
            digests = prepared.candidate_digests
            if digests is None:  # imported: hash the candidate rows exactly as DuckDB will store them
                typed_cand = (_k_cand if _k_cand.schema.equals(_CANDIDATE_SCHEMA)
                              else _arrow(con.execute(_TYPED_CANDIDATES)))
                _k_cand = typed_cand
                ids = np.asarray(typed_cand.column("decision_id").to_pylist(), dtype=object)
                dec_ids = np.asarray(_k_typed.column("decision_id").to_pylist(), dtype=object)
                starts = np.searchsorted(ids, dec_ids, side="left")
                ends = np.searchsorted(ids, dec_ids, side="right")
                digests = integrity.candidate_digests(typed_cand, starts, ends)
            records, chained = integrity.record_and_chain(row_digests, digests, prev)
            _k_chain = pa.table({"seq": seq, "decision_id": _k_typed.column("decision_id"),
                                 "record_hash": integrity.hex_strings(records),
                                 "chain_hash": integrity.hex_strings(chained)})
            # The transaction in one call (a live group's statements cost more to plan and to
            # hand over than to run), the candidates by name: their Arrow types are the table's.
            inserts = ("INSERT INTO decisions SELECT * FROM _k_typed; "
                       + "INSERT INTO candidates BY NAME SELECT * FROM _k_cand; "
                       + "INSERT INTO chain BY NAME SELECT * FROM _k_chain; COMMIT")
            begun = not self._atomic
            if self._atomic:  # part of the caller's transaction (see atomic())
                if register:
                    self.register_strategy(strategy, in_transaction=True)
                con.execute(inserts.removesuffix("; COMMIT"))
            elif register:  # the first batch of a strategy registers it in the same transaction
                con.execute("BEGIN TRANSACTION")
                self.register_strategy(strategy, in_transaction=True)
                con.execute(inserts)
            else:
                con.execute("BEGIN TRANSACTION; " + inserts)
            self._head = (int(seq[-1]), chained[-1].tobytes().decode())
        except Exception as exc:
            if begun:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:  # the statement that failed ended it already
                    pass
            if register:
                self._registered.discard(strategy.version)
            if isinstance(exc, duckdb.Error):
                raise LogError(f"Writing {n} decisions to {self.path!r} failed: {exc}",
                               "Nothing was written; check free disk space and that no other process holds the file.") from exc
            raise
        return n

    def append_outcomes(self, outcomes: pd.DataFrame, *, checked: bool = False) -> int:
        """Log outcomes (columns: decision_id, action_id, outcome, revenue, margin, churned, ts_us).

        With ``checked`` (outcomes reported from outside, e.g. ``POST /outcome``) each row must
        name a logged decision and, if any, one of its actions; revenue and margin must be
        finite; there is one outcome per decision and action: the same one again is not logged
        a second time (returns 0), a different one is a :class:`ConflictError`, and so is a
        churn flag that contradicts one logged for the decision.
        """
        if checked:
            outcomes = self._checked_outcomes(outcomes)
            if outcomes.empty:
                return 0
        tbl = pa.table({
            "decision_id": pa.array(outcomes["decision_id"].astype(object), pa.string()),
            "action_id": pa.array(outcomes["action_id"].astype(object), pa.string()),
            "outcome": pa.array(outcomes["outcome"].astype(object), pa.string()),
            "revenue": pa.array(outcomes["revenue"].to_numpy(dtype=np.float64)),
            "margin": pa.array(outcomes["margin"].to_numpy(dtype=np.float64)),
            "churned": pa.array(outcomes["churned"].astype(object).where(outcomes["churned"].notna(), None), pa.bool_()),
            "ts": pa.array(outcomes["ts_us"].to_numpy(dtype=np.int64), pa.timestamp("us", tz="UTC")),
        })
        return self.append_outcome_table(tbl)

    def append_outcome_table(self, tbl: pa.Table) -> int:
        """Log outcomes given as an Arrow table with the ``outcomes`` columns (less
        ``seal_seq``; a missing revenue or margin stays NULL: not known, not 0), in one sealed
        write.  Every row must name a logged decision."""
        con = self.con
        con.register("_k_out", tbl)
        try:
            unknown = _first(con.execute(
                "SELECT o.decision_id FROM _k_out o ANTI JOIN decisions d USING (decision_id) LIMIT 1"))
            if unknown:
                raise LogError(f"Outcome for unknown decision {unknown[0]!r}.",
                               "Log outcomes only for decisions in this log.")
            with _sealed_write(con, "outcomes", in_transaction=self._atomic) as seq:
                con.execute("INSERT INTO outcomes BY NAME SELECT *, ?::BIGINT AS seal_seq FROM _k_out", [seq])
        finally:
            con.unregister("_k_out")
        return len(tbl)

    def _checked_outcomes(self, outcomes: pd.DataFrame) -> pd.DataFrame:
        keep = []
        con = self.con.cursor()
        for r in outcomes.itertuples(index=False):
            did, aid = r.decision_id, (None if pd.isna(r.action_id) else r.action_id)
            for name in ("revenue", "margin"):
                v = getattr(r, name)
                if not (isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= MAX_AMOUNT):
                    raise InputError(f"{name} must be a finite amount of at most {MAX_AMOUNT:,.0f}, got {v!r}.",
                                     f"Send the {name} in the strategy's currency.")
            if not con.execute("SELECT count(*) FROM decisions WHERE decision_id = ?", [did]).fetchall()[0][0]:
                raise LookupError(did)
            if aid is not None and not con.execute("SELECT count(*) FROM candidates WHERE decision_id = ? AND "
                                                   "action_id = ?", [did, aid]).fetchall()[0][0]:
                raise InputError(f"Action {aid!r} is not an action of decision {did!r}.",
                                 "Name an action of the decision's catalog (see GET /decisions/{id}), or none.")
            same = con.execute("SELECT outcome, revenue, margin, churned FROM outcomes WHERE decision_id = ? "
                               "AND action_id IS NOT DISTINCT FROM ?", [did, aid]).fetchall()
            new = (r.outcome, float(r.revenue), float(r.margin), None if pd.isna(r.churned) else bool(r.churned))
            if same:
                if tuple(same[0]) == new:
                    continue  # the same report again (a retry): logged once
                raise ConflictError(f"An outcome for decision {did!r}" + (f" and action {aid!r}" if aid else "")
                                    + f" is logged already ({same[0][0]}, revenue {same[0][1]:g}, margin "
                                      f"{same[0][2]:g}); it is not changed.",
                                    "Outcomes are facts: report each once. Correct a mistaken one in your source "
                                    "system and keep the log as the record of what was reported.")
            if new[3] is not None:
                other = con.execute("SELECT churned FROM outcomes WHERE decision_id = ? AND churned IS NOT NULL "
                                    "AND churned <> ? LIMIT 1", [did, new[3]]).fetchall()
                if other:
                    raise ConflictError(f"Decision {did!r} is logged with churned={str(other[0][0]).lower()}; "
                                        f"churned={str(new[3]).lower()} contradicts it.",
                                        "Churn is per customer and decision: send the same value for every action.")
            keep.append(r)
        return pd.DataFrame(keep, columns=outcomes.columns)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction around several appends (an import): all of them are logged, or —
        on any error, or a killed process — none.  Also faster for large writes: DuckDB
        commits once, and writes full row groups straight to the file instead of through
        its write-ahead log (1.3M imported rows: 27 commits took 3 s, one takes 1 s)."""
        if self._atomic:
            yield
            return
        self.con.execute("BEGIN TRANSACTION")
        self._atomic = True
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:  # the statement that failed ended it already
                pass
            self._head = None  # the chain's head is re-read from the log
            self._registered.clear()
            raise
        finally:
            self._atomic = False

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Settings for a long run of large appends (``klartext demo``): DuckDB on one thread.
        The deciding and preparing threads need the other core; with DuckDB on two threads
        the pipelined demo job took as long (2026-11-23, DuckDB 2.0)."""
        threads = self.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        self.con.execute("SET threads = 1")
        try:
            yield
        finally:
            self.con.execute(f"SET threads = {int(threads)}")

    def verify(self) -> integrity.VerifyResult:
        return integrity.verify(self.con.cursor())


#: The inputs' JSON of the engine's decisions, as the log stores it (DuckDB's JSON functions
#: write it; the other columns of the typed rows are the engine's Arrow columns as they are).
_INPUTS_EXPR = """CASE WHEN assignment IS NULL
         THEN json_object('features', features, 'contacts', contacts, 'rejections', json(rejections))
         ELSE json_object('features', features, 'contacts', contacts, 'rejections', json(rejections),
                          'assignment', json(assignment)) END"""
_TYPED_DECISIONS = record.typed_select("decisions", "_k_dec", exprs={"inputs": _INPUTS_EXPR})
_INPUTS_JSON = f"SELECT {_INPUTS_EXPR} AS inputs FROM _k_dec"

_JSON = pa.json_(pa.string())


def _json_columns(table: pa.Table, names: tuple[str, ...] = ("inputs", "model_versions")) -> pa.Table:
    """``table`` with these text columns typed as Arrow JSON (no copy): DuckDB stores such a
    column's text as given instead of parsing it to check it.  Only for text that is JSON by
    construction (written by json.dumps or by DuckDB's own JSON functions)."""
    for name in names:
        i = table.column_names.index(name)
        col = table.column(i)
        chunks = [c.cast(pa.string()) if c.type != pa.string() else c for c in col.chunks]
        table = table.set_column(i, pa.field(name, _JSON), pa.chunked_array(
            [pa.ExtensionArray.from_storage(_JSON, c) for c in chunks], type=_JSON))
    return table

_TYPED_IMPORTED = record.typed_select("decisions", "_k_dec")
_TYPED_CANDIDATES = record.typed_select("candidates", "_k_cand")

#: The Arrow schema of ``candidates`` rows as DuckDB returns them (an importer that builds its
#: rows with it is hashed and inserted as it is).
_CANDIDATE_SCHEMA = record.arrow_schema("candidates")


@dataclass
class PreparedBatch:
    """A decision batch as Arrow tables plus its candidate digests, ready to be logged."""

    n: int
    strategy: Strategy | None  #: None for decisions imported from another system
    decisions: pa.Table
    candidates: pa.Table
    candidate_digests: np.ndarray  #: (n, 32) SHA-256 digests
    typed: pa.Table | None = None  #: the decisions as stored, less ``seq`` (when prepared with a cursor)
    tails: list[tuple] | None = None  #: their columns after ``seq``, for the hash (:func:`integrity.decision_tails`)
    first_seq: int | None = None  #: the sequence number the decisions were hashed with (if expected)
    row_digests: np.ndarray | None = None  #: (n, 32) their row digests with ``seq`` from ``first_seq`` on


def prepare(batch: DecisionBatch, strategy: Strategy, pseudonyms: np.ndarray, source: str = "klartext",
            con: duckdb.DuckDBPyConnection | None = None, first_seq: int | None = None) -> PreparedBatch:
    """Turn a batch into the Arrow tables the log stores and hash its candidate rows.

    Touches no table, so it can run on another thread than the writer.  With ``con`` (a
    cursor of any DuckDB connection, used only by this thread) it also types the decision
    rows as the log stores them (DuckDB writes the inputs' JSON) and hashes them, up to
    their sequence numbers: the writer then only numbers, chains and inserts.  A job that
    knows which sequence numbers its batches will get passes ``first_seq``: the rows are
    then hashed with them here, and the writer uses those digests if the numbers are right.
    """
    if batch.strategy_version != strategy.version:
        raise LogError("The batch was decided with another strategy version than the one given.",
                       "Pass the strategy the engine used.")
    n = len(batch)
    rows = _CandidateRows.of(batch, strategy)
    dec, cand = _arrow_tables(batch, strategy, pseudonyms, source, rows)
    A = len(strategy.actions)
    starts = np.arange(n, dtype=np.int64) * A
    digests = integrity.group_digests(_candidate_columns(batch, strategy, rows), n * A, starts, starts + A)
    if con is None:
        return PreparedBatch(n, strategy, dec, cand, digests)
    typed = _typed_small(dec) if n <= SMALL_BATCH else None
    if typed is None:
        _k_dec = dec  # read by the query below (DuckDB's replacement scan of this frame's locals)
        typed = _typed_rows(dec, _arrow(con.execute(_INPUTS_JSON)).column("inputs"))
    tails = integrity.decision_tails(typed)
    row_digests = None if first_seq is None else integrity.digests_with_seq(
        np.arange(first_seq, first_seq + n, dtype=np.int64), tails)
    return PreparedBatch(n, strategy, dec, cand, digests, typed, tails, first_seq, row_digests)


#: Up to this many decisions, prepare() writes the inputs' JSON itself (a live group: a
#: DuckDB query costs milliseconds however few rows it has); beyond, DuckDB writes it faster.
SMALL_BATCH = 64


def _typed_small(dec: pa.Table) -> pa.Table | None:
    """The decision rows typed (:func:`_typed_rows`) with ``inputs`` written in Python: compact
    JSON of the document :data:`_INPUTS_JSON` writes (DuckDB keeps a JSON text as it is
    given, so the hash covers exactly what is stored).  None when a value has no JSON form
    (a non-finite number): DuckDB's path then decides."""
    feats, conts = dec.column("features").to_pylist(), dec.column("contacts").to_pylist()
    rej, asg = dec.column("rejections").to_pylist(), dec.column("assignment").to_pylist()
    try:
        inputs = []
        for f, c, r, a in zip(feats, conts, rej, asg):
            doc = {"features": f, "contacts": c, "rejections": json.loads(r)}
            if a is not None:
                doc["assignment"] = json.loads(a)
            inputs.append(json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    except ValueError:
        return None
    return _typed_rows(dec, pa.array(inputs, pa.string()))


def _typed_rows(dec: pa.Table, inputs: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The engine's decision rows as the log stores them, less ``seq``: its Arrow columns with
    the log's types (:mod:`decision_log.record`; dictionaries decoded) and the inputs' JSON."""
    out = {}
    for c in record.DECISIONS[1:]:
        if c.name == "inputs":
            out[c.name] = inputs
            continue
        arr = dec.column(c.name).combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        out[c.name] = arr if arr.type == c.arrow else arr.cast(c.arrow)
    return pa.table(out)


def _candidate_columns(batch: DecisionBatch, s: Strategy, rows: _CandidateRows | None = None) -> list[tuple]:
    """The candidate rows that :func:`_arrow_tables` makes, described for the hash straight
    from the batch's arrays (no Arrow calls: for a live service's small groups they cost more
    than the hashing).  The tests check that both hash to the same digests."""
    r = rows if rows is not None else _CandidateRows.of(batch, s)
    c = r.cells
    aids = s.action_ids
    label, text, fixed = integrity.label_column, integrity.text_column, integrity.fixed_column

    def floats(v: np.ndarray) -> tuple:
        return fixed(v, ~np.isnan(v))

    return [
        text(r.decision, batch.decision_id.tolist()),
        fixed(r.ts_us),
        label(r.channel, s.channel_ids),
        label(r.action, aids),
        label(r.action, [a.issue for a in s.actions]),
        label(r.action, [a.group for a in s.actions]),
        label(c["stage"], STAGES),
        label(c["rule"], batch.rule_names),
        text(c["reason"], r.reason_texts),
        floats(c["propensity"]), floats(c["value"]), floats(c["context_weight"]), floats(c["lever"]), floats(c["priority"]),
        fixed(c["rank"], c["rank"] != 0),
        fixed(c["selected"]),
        label(r.model, [batch.model_versions.get(a, "") for a in aids]),
    ]


#: The engine's (n, A) arrays that become candidate columns as they are.
_CELLS = ("stage", "rule", "reason", "propensity", "value", "context_weight", "lever", "priority", "rank", "selected")


@dataclass(frozen=True)
class _CandidateRows:
    """A batch's (n, A) arrays laid out as the log's candidate rows: one per action of the
    catalog per decision, within a decision in ``action_id`` order (the order the hash reads).
    Made once per batch for both the Arrow table and the hash."""

    decision: np.ndarray  #: the row's decision (index into the batch)
    action: np.ndarray  #: its action (catalogue position)
    ts_us: np.ndarray
    channel: np.ndarray
    cells: dict[str, np.ndarray]  #: the batch's arrays named in :data:`_CELLS`, in row order
    model: np.ndarray  #: the action again where a model scored it, else -1
    reason_texts: pa.Array  #: the batch's reasons (``reason`` indexes them), as Arrow strings

    @classmethod
    def of(cls, batch: DecisionBatch, s: Strategy) -> _CandidateRows:
        n, A = batch.stage.shape
        action, lay_out = _candidate_order(n, s.action_ids)
        cells = {name: lay_out(getattr(batch, name)) for name in _CELLS}
        return cls(
            decision=np.repeat(np.arange(n, dtype=np.int32), A), action=action,
            ts_us=np.repeat(batch.ts_us, A), channel=np.repeat(batch.requests.channel, A), cells=cells,
            model=np.where(np.isnan(cells["propensity"]), -1, action).astype(np.int32),
            reason_texts=pa.array(batch.reasons or [""], pa.string()))


def _candidate_order(n: int, aids: tuple[str, ...]) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Within a decision, candidate rows are stored in ``action_id`` order (the order the hash
    reads): each row's catalogue position, and a function that lays an (n, A) array of the
    engine out in that row order."""
    perm = np.argsort(np.asarray(aids, dtype=object), kind="stable")

    def cells(x: np.ndarray) -> np.ndarray:
        return x[:, perm].ravel()

    return np.tile(perm.astype(np.int32), n), cells


def _arrow_tables(batch: DecisionBatch, s: Strategy, pseudo: np.ndarray, source: str,
                  rows: _CandidateRows | None = None) -> tuple[pa.Table, pa.Table]:
    n, A = batch.stage.shape
    req = batch.requests
    ch = req.channel
    ts = pa.array(batch.ts_us, pa.timestamp("us", tz="UTC"))
    directions = [c.direction for c in s.channels]
    features = pa.StructArray.from_arrays(
        [pa.array(req.features[f.name], from_pandas=f.missing) for f in s.features],  # NaN → null: missing
        [f.name for f in s.features])
    contacts = pa.StructArray.from_arrays(
        [pa.array(req.contacts[:, j]) for j in range(len(s.channels))], list(s.channel_ids))
    aids = s.action_ids
    rejections = _rejections_json(req.rejections, req.days_since_rejection, aids)
    assignment = pa.nulls(n, pa.string())
    if req.assigned is not None and (req.assigned >= 0).any():
        assignment = pa.array([json.dumps({"action": aids[a], "probability": float(p)}) if a >= 0 else None
                               for a, p in zip(req.assigned.tolist(), req.assigned_probability.tolist())], pa.string())
    slots = batch.slots
    taken = slots >= 0  # a row's slots are filled from the first, in slot order
    offsets = np.concatenate([[0], np.cumsum(taken.sum(axis=1))]).astype(np.int32)
    chosen_actions = pa.ListArray.from_arrays(pa.array(offsets), _dict_array(slots[taken], aids).cast(pa.string()))
    first = slots[:, 0] if slots.shape[1] else np.full(n, -1, np.int32)
    trigger = (pa.array(req.features["trigger"].astype(object), pa.string())
               if "trigger" in req.features else pa.nulls(n, pa.string()))
    dec = pa.table({
        "decision_id": pa.array(batch.decision_id, pa.string()),
        "ts": ts,
        "customer": pa.array(pseudo, pa.string()),
        "channel": _dict_array(ch, s.channel_ids),
        "direction": _dict_array(ch, directions),
        "trigger": trigger,
        "features": features,
        "contacts": contacts,
        "rejections": pa.array(rejections, pa.string()),
        "assignment": assignment,
        "strategy_version": _repeated(batch.strategy_version, n),
        "model_versions": _repeated(json.dumps(batch.model_versions), n),
        "chosen_action": _dict_array(first, aids, null_below_zero=True),
        "chosen_actions": chosen_actions,
        "selection_probability": pa.array(batch.selection_probability),
        "explored": pa.array(batch.explored),
        "latency_us": pa.array(batch.latency_us),
        "source": _repeated(source, n),
    })
    cr = rows if rows is not None else _CandidateRows.of(batch, s)
    c = cr.cells
    versions = [batch.model_versions.get(a, "") for a in aids]
    cand = pa.table({
        "decision_id": pa.DictionaryArray.from_arrays(pa.array(cr.decision), pa.array(batch.decision_id, pa.string())),
        "ts": pa.array(cr.ts_us, pa.timestamp("us", tz="UTC")),
        "channel": _dict_array(cr.channel, s.channel_ids),
        "action_id": _dict_array(cr.action, aids),
        "issue": _dict_array(cr.action, [a.issue for a in s.actions]),
        "group": _dict_array(cr.action, [a.group for a in s.actions]),
        "stage": _dict_array(c["stage"], list(STAGES)),
        "rule": _dict_array(c["rule"], batch.rule_names or [""], null_below_zero=True),
        "reason": _dict_array(c["reason"], cr.reason_texts, null_below_zero=True),
        "propensity": _float_array(c["propensity"]),
        "value": _float_array(c["value"]),
        "context_weight": _float_array(c["context_weight"]),
        "lever": _float_array(c["lever"]),
        "priority": _float_array(c["priority"]),
        "rank": pa.array(c["rank"], mask=c["rank"] == 0),
        "selected": pa.array(c["selected"]),
        "model_version": _dict_array(cr.model, versions, null_below_zero=True),
        "ordinal": pa.array(np.tile(np.arange(A, dtype=np.int32), n)),
    })
    return dec, cand


@contextmanager
def _sealed_write(con: duckdb.DuckDBPyConnection, tbl: str, in_transaction: bool = False) -> Iterator[int]:
    """One sealed write to ``tbl``: yields the seal number to stamp the new rows with, then
    appends its seal entry, all in one transaction (the caller's, with ``in_transaction``)."""
    if not in_transaction:
        con.execute("BEGIN TRANSACTION")
    try:
        seq = seals.head(con)[0] + 1
        yield seq
        seals.seal(con, tbl, seq)
        if not in_transaction:
            con.execute("COMMIT")
    except BaseException:
        if not in_transaction:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
        raise


def _number_candidates(con: duckdb.DuckDBPyConnection) -> None:
    """Give the candidate rows of a log of an earlier release their ``ordinal``, once: the
    ``action_id`` order its record hashes read them in."""
    if not con.execute("SELECT count(*) FROM (SELECT 1 FROM candidates WHERE ordinal IS NULL LIMIT 1)").fetchall()[0][0]:
        return
    con.execute("""
        UPDATE candidates SET ordinal = n.o FROM (
            SELECT rowid AS r, CAST(row_number() OVER (PARTITION BY decision_id ORDER BY action_id) - 1 AS INTEGER) AS o
            FROM candidates) n
        WHERE candidates.rowid = n.r AND candidates.ordinal IS NULL""")


def _put_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    """A meta entry, written once and sealed."""
    if not con.execute("SELECT count(*) FROM meta WHERE key = ?", [key]).fetchall()[0][0]:
        with _sealed_write(con, "meta") as seq:
            con.execute("INSERT INTO meta (key, value, seal_seq) VALUES (?, ?, ?)", [key, value, seq])
