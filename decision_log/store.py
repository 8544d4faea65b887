"""Open, write and read the decision log (one DuckDB file).

Writes are batched: a batch made ready by :mod:`decision_log.rows` — its decisions, their
candidate rows and what the hash chain needs of them — is numbered, chained and inserted in
one transaction, so a decision is either logged completely or not at all.  While a batch
job or the service runs, :mod:`decision_log.writer` is the log's one writer.

Only one process may hold a DuckDB file read-write, and while it does no other process can
open it at all; open read-only (``read_only=True``) to share a finished log between readers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from decision_log import integrity, journal, live, peers, pseudonyms, register, rows, seals, shards, subjects, summaries
from decision_log.rows import Chained, PreparedBatch, prepare
from decision_log.schema import DDL, INSERT_CHAINED, SCHEMA_VERSION, execute_over, has_column, has_table, while_locked
from decisioning.cache import BoundedCache
from decisioning.engine import DecisionBatch, logged_reason
from decisioning.errors import ConflictError, InputError, KlartextError, LogError, LogInUse
from decisioning.models import ModelSet, PropensityModel
from decisioning.strategy import Strategy, parse_strategy

#: DuckDB's buffer pool in each throw-away file a Spark partition writes (:meth:`DecisionLog.shard_writer`).
SHARD_WRITER_MEMORY = "512MB"

#: DuckDB's buffer pool while decisions are copied into a shard and removed from a file
#: (``archive``, ``purge``, sealing workers' files) and while the summaries are refreshed.
#: DuckDB otherwise takes up to 80% of the machine's memory for the sorts and joins of a large
#: stretch (1.75M decisions: 20.5 GB; with this limit 1.6 GB, and no slower: it spills beside
#: the file).
ARCHIVE_MEMORY = "1GB"

#: Largest revenue or margin of one outcome (in the strategy's currency).
MAX_AMOUNT = 1e9


@contextmanager
def memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """DuckDB's ``memory_limit`` on ``con``'s database set to ``limit`` inside the block."""
    old = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute("RESET memory_limit")
    default = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == old
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:  # (the setting reads rounded: the default is given back exactly)
        con.execute("RESET memory_limit" if default else f"SET memory_limit = '{old}'")


def _connect(path: str, read_only: bool, wait_s: float,
             manifest: shards.Manifest | None = None, damaged_ok: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, trying again every 50 ms for up to ``wait_s`` while the file is locked.
    A read-only log with shards is read through :func:`decision_log.shards.reader`."""
    if read_only and manifest is not None and (manifest.shards or shards.live_workers(manifest.root)):
        return shards.reader(path, manifest, wait_s, damaged_ok)
    return while_locked(lambda: duckdb.connect(path, read_only=read_only), wait_s)


def _first(result: duckdb.DuckDBPyConnection) -> tuple | None:
    """First row of a result (fetching everything, so the connection is free afterwards)."""
    rows = result.fetchall()
    return rows[0] if rows else None


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
        #: The log this file belongs to: itself, or — for a service worker's file — the head,
        #: whose compliance register (lifecycle, objections) the worker follows.
        self.home = path
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
        self.suspended = False  #: the file is let go of until :meth:`resume`
        self.seals_inputs = False  #: decisions' inputs are sealed under their customers' keys
        #: The customers' keys (None without the pseudonym key, or where inputs are not sealed).
        self.subject_keys: subjects.SubjectKeys | None = None
        self.file_version: float | None = None  #: the file's mtime a reader (the dashboard) keys its caches by
        #: The log's shards (:mod:`decision_log.shards`); a read-only log reads them through ``con``.
        self.manifest = shards.Manifest(shards.root_of(path)) if path != ":memory:" else None
        #: A service worker's file: the log's shards, which its contact history reads too.
        self.history_shards: shards.Manifest | None = None
        #: A service worker's copy of the other workers' recent contacts (:mod:`decision_log.peers`).
        self.peers: peers.Peers | None = None
        #: Held while a worker reads a customer's contact history, and while the other workers'
        #: copies are swapped for the shard a rotation sealed them into (:mod:`decision_log.peers`).
        self.history_lock = threading.Lock()

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, create: bool = True,
             wait_s: float = 0.0, seal_inputs: bool = True, damaged_ok: bool = False) -> DecisionLog:
        """Open (and, unless ``read_only``, create) the log at ``path``.

        ``seal_inputs``: a new log stores each decision's inputs sealed under a key of its
        customer's own (:mod:`decision_log.subjects`); a log keeps what it was made with.

        ``wait_s``: while another process holds the file, try again for this long (the
        dashboard holds its log only during a page run, see :meth:`suspend`).

        ``path`` may be a log directory (its file is ``log.duckdb``).  A log with shards
        (:mod:`decision_log.shards`) opened read-only reads them all; one whose shard files
        are missing is refused by name (``damaged_ok``: read what is there, for ``verify``).

        Raises
        ------
        LogError
            If the file is missing (read-only / ``create=False``), locked by another process,
            or not a Klartext log.
        """
        path = shards.head_path(str(path))
        if path != ":memory:" and not Path(path).exists() and (read_only or not create):
            raise LogError(f"No decision log at {path!r}.",
                           "Create one with `klartext demo --db " + path + "`.")
        manifest = shards.Manifest.load(shards.root_of(path)) if path != ":memory:" else None
        try:
            con = _connect(path, read_only, wait_s, manifest, damaged_ok)
        except duckdb.IOException as exc:
            msg = str(exc)
            if "lock" in msg.lower() and read_only:  # a service holds it: read its freshest replica
                replica = cls.open_live(path)
                if replica is not None:
                    return replica
            if "lock" in msg.lower():
                raise LogInUse(f"The decision log {path!r} is in use by another process.",
                               "DuckDB lets one process write a file: wait for the job that holds it (a demo, an "
                               "import, `explain --sample`) or stop it, then run this again. A dashboard lets go of "
                               "its log between page runs; a running `klartext serve` holds it for good and keeps "
                               "a live replica for readers (it appears a few seconds after the service "
                               "starts).") from exc
            raise LogError(f"Cannot open decision log {path!r}: {msg}",
                           "Check that the path is a DuckDB file written by Klartext.") from exc
        except duckdb.Error as exc:
            raise LogError(f"Cannot open decision log {path!r}: {exc}",
                           "Check that the path is a DuckDB file written by Klartext.") from exc
        if not read_only and manifest is not None and manifest.root.exists() and has_table(con, "meta"):
            shards.recover(con, manifest)
        if not read_only:
            # The log only appends.  A checkpoint's vacuum would merge the partly filled row
            # groups that every bulk transaction leaves, re-compressing them: half of all
            # DuckDB work when logging a large batch, for a slightly smaller file.
            con.execute("SET max_vacuum_tasks = 0")
            had_seals = has_table(con, "seals")
            for stmt in DDL + seals.DDL + summaries.DDL:
                con.execute(stmt)
            if not had_seals:  # a log of an earlier release: seal what it holds, once
                seals.seal_unstamped(con)
            _number_candidates(con)
            _put_meta(con, "schema_version", str(SCHEMA_VERSION))
            if path != ":memory:":  # what a service acknowledged and had not loaded when it stopped
                try:
                    journal.recover(con, path, manifest.tail)
                except BaseException:
                    con.close()  # (else the file stays open in this process, refusing other opens)
                    raise
        else:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if "decisions" not in tables:
                con.close()
                raise LogError(f"{path!r} is not a Klartext decision log (it has no 'decisions' table).",
                               "Create one with `klartext demo --db " + path + "`.")
        try:
            key = cls._checked_key(con, path, read_only)
            log = cls(con, path, key, read_only)
            if manifest is not None:
                log.manifest = manifest
            log._open_subject_keys(seal_inputs)
        except LogError:
            con.close()
            raise
        return log

    def _open_subject_keys(self, seal_new: bool) -> None:
        """The customers' keys of a log that seals inputs (:mod:`decision_log.subjects`);
        a new writable log starts sealing when ``seal_new``."""
        scheme = _first(self.con.execute("SELECT value FROM meta WHERE key = 'inputs_sealed'"))
        scheme = scheme[0] if scheme else None
        if scheme is None and seal_new and not self.read_only and not self.con.execute(
                "SELECT count(*) FROM (SELECT 1 FROM decisions LIMIT 1)").fetchall()[0][0]:
            _put_meta(self.con, "inputs_sealed", subjects.SCHEME)
            scheme = subjects.SCHEME
        if scheme is None:
            return
        if scheme != subjects.SCHEME:
            raise LogError(f"The log {self.path!r} seals inputs with {scheme!r}, which this Klartext does not know.",
                           "Open it with the Klartext release that wrote it.")
        self.seals_inputs = True
        if self._key is not None:
            self.subject_keys = subjects.SubjectKeys(
                None if self.path == ":memory:" else subjects.keys_path(self.path), self._key,
                read_now=not self.read_only)

    @classmethod
    def _checked_key(cls, con: duckdb.DuckDBPyConnection, path: str, read_only: bool) -> bytes | None:
        """The log's pseudonym key, checked against the key id the log recorded with its first
        key.  A new key is made only for a log that holds no decision yet: a replaced key
        would give every customer a new pseudonym (and reset their contact caps)."""
        stored = _first(con.execute("SELECT value FROM meta WHERE key = 'key_id'"))
        stored = stored[0] if stored else None
        fresh = stored is None and not con.execute("SELECT count(*) FROM (SELECT 1 FROM decisions LIMIT 1)"
                                                   ).fetchall()[0][0]
        key = pseudonyms.load_key(path, create=not read_only and fresh)
        if key is None:
            if read_only:
                return None  # views work; raw-id lookups say the key is missing
            raise LogError(f"The pseudonym key of the log {path!r} is missing (no {path}.key, no ${pseudonyms.KEY_ENV}).",
                           f"Restore {path}.key from your backup (or set ${pseudonyms.KEY_ENV} to its hex content). Klartext "
                           "does not make a new key for a log that holds decisions: every customer would get a "
                           "new pseudonym and their contact caps would start again.")
        kid = pseudonyms.key_id(key)
        if stored is None:
            if not read_only and path != ":memory:":
                _put_meta(con, "key_id", kid)
        elif stored != kid:
            raise LogError(f"The pseudonym key given for {path!r} (key id {kid}) is not the key this log was "
                           f"written with (key id {stored}).",
                           f"Use the log's own {path}.key (or its hex content in ${pseudonyms.KEY_ENV}).")
        return key

    @classmethod
    def shard_writer(cls, path: str, key: bytes, keys_path: str | None, seq_base: int,
                     standing: dict[str, frozenset[str] | None]) -> DecisionLog:
        """A throw-away log file that one Spark partition (or service worker) writes its
        decisions into, numbered from ``seq_base + 1`` on a chain of its own, before they are
        sealed into a shard of the log (:mod:`decision_log.shards`).  It pseudonymises with
        the log's ``key``, seals inputs under the customers' keys in the log's ``keys_path``
        (None: in clear) and honours the ``standing`` objections its caller read."""
        con = duckdb.connect(path)
        # several partitions write side by side: each keeps a small buffer pool and spills to disk
        # beside its file, so memory stays bounded whatever the partition's size
        con.execute(f"SET memory_limit = '{SHARD_WRITER_MEMORY}'")
        con.execute(f"SET temp_directory = '{Path(path).parent / 'spill'}'")
        log = cls._side_file(con, path, key, keys_path)
        log._head = (int(seq_base), integrity.GENESIS)
        log._standing = standing
        return log

    @classmethod
    def _side_file(cls, con: duckdb.DuckDBPyConnection, path: str, key: bytes, keys_path: str | None
                   ) -> DecisionLog:
        """A log file written beside the log, on a chain of its own (a Spark partition's, a
        service worker's): the log's tables, its pseudonym key, its customers' keys file."""
        try:
            con.execute("SET max_vacuum_tasks = 0")
            for stmt in DDL + seals.DDL + summaries.DDL:  # (the summary tables stay empty: live replicas copy them)
                con.execute(stmt)
        except BaseException:
            con.close()
            raise
        log = cls(con, path, key, read_only=False)
        log.manifest = None
        if keys_path is not None:
            log.seals_inputs = True
            log.subject_keys = subjects.SubjectKeys(Path(keys_path), key, read_now=True)
        return log

    @classmethod
    def worker(cls, head: str, k: int, key: bytes, keys_path: str | None, file_id: str) -> DecisionLog:
        """The open file of service worker ``k`` of the log whose file is ``head``
        (``klartext serve --workers N``): the worker's decisions, numbered from 1 on a chain of
        their own, until :meth:`seal_workers` moves them into a shard.  Nobody else writes it,
        so workers never wait for each other's lock.  Its strategies and models come from the
        head; it follows the head's compliance register (lifecycle, objections); it
        pseudonymises with the log's ``key`` and seals inputs under the customers' keys in
        ``keys_path`` (None: in clear).  Reopened after a crash, DuckDB replays its WAL: every
        acknowledged decision is there.  ``file_id``: the id the supervisor issued for this
        file in the head (:meth:`issue_worker_file`); a file found there under another id is
        refused."""
        path = shards.worker_path(shards.root_of(head), k)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = cls._side_file(while_locked(lambda: duckdb.connect(str(path)), 30.0), str(path), key, keys_path)
        try:
            _put_meta(log.con, "worker_file_id", file_id)  # (kept when the file exists)
            _put_meta(log.con, "key_id", pseudonyms.key_id(key))
            found = _first(log.con.execute("SELECT value FROM meta WHERE key = 'worker_file_id'"))[0]
            if found != file_id:
                raise LogError(f"{path} is not the file this service started worker {k} with (its id {found[:12]}… "
                               "was not issued for this run).",
                               "Stop the service, move the file out of the log's folder and start it again: "
                               "`klartext serve` seals only the worker files it started itself.")
            journal.recover(log.con, path)  # what the worker acknowledged and had not loaded when it stopped
        except BaseException:
            log.close()
            raise
        log.home = head
        log.history_shards = shards.Manifest.load(shards.root_of(head))
        return log

    def issue_worker_file(self, k: int) -> str:
        """A new id for the file of service worker ``k``, sealed in this (head) file before the
        worker starts: :meth:`seal_workers` seals a worker file only under an id issued here."""
        file_id = os.urandom(16).hex()
        seals.insert_meta(self.con, shards.ISSUED_META + file_id, str(int(k)))
        return file_id

    @classmethod
    def open_live(cls, path: str | Path, newer_than: int = -1) -> DecisionLog | None:
        """The freshest live replica of a log that ``klartext serve`` holds, read-only (see
        :mod:`decision_log.live`); None when no service keeps one newer than ``newer_than``."""
        path = shards.head_path(str(path))
        manifest = shards.Manifest.load(shards.root_of(path))
        found = live.open_replica(path, newer_than, connect=(lambda p: shards.reader(p, manifest))
                                  if manifest.shards else None)
        if found is None:
            return None
        log = cls(found[0], str(path), pseudonyms.load_key(str(path), create=False), read_only=True)
        log.manifest = manifest
        log.replica = found[1]
        log._open_subject_keys(False)
        return log

    def close(self) -> None:
        """Close the file; a writer first brings the dashboard's summaries up to date
        (:mod:`decision_log.summaries`)."""
        try:
            if not self.read_only and self.manifest is not None and not self._atomic:
                self.refresh_summaries()
        except duckdb.Error:
            pass  # readers compute what the summaries lack from the rows
        finally:
            self.con.close()

    def refresh_summaries(self) -> int:
        """Count the decisions and outcomes logged since the last refresh into the summaries
        the dashboard reads (:func:`decision_log.summaries.refresh`); returns the days
        refreshed.  A log with shards is counted whole: its file's rows and its shards'."""
        if self.read_only or not summaries.kept(self.con):
            return 0
        # bounded as archive is: a batch of a million decisions peaked at 4.0 GB here with
        # DuckDB's default (80% of the machine for its hash aggregates), 2.7 GB with this
        with memory_limit(self.con, ARCHIVE_MEMORY):
            return summaries.refresh(self.con, rows=self.summary_rows())

    def summary_rows(self) -> summaries.Rows:
        """The rows the summaries count, as this connection reads them: a reader's, or a
        writer's file and its shards (:func:`decision_log.shards.summary_rows`)."""
        if self.read_only:
            return summaries.rows_of(self.con)
        return shards.summary_rows(self.manifest)

    def suspend(self) -> None:
        """Let go of the file (a read-only log between uses), so that another process may
        write it; :meth:`resume` opens it again.  Everything read so far (strategies,
        models, engines) stays cached."""
        if not self.read_only or self.replica is not None:
            raise LogError("Only a read-only log of a file can be suspended.", "Open it with read_only=True.")
        self.con.close()
        self.suspended = True

    def resume(self, wait_s: float = 5.0) -> None:
        """Open the file again after :meth:`suspend` (waiting up to ``wait_s`` while a writer
        holds it)."""
        if not self.suspended:
            return
        try:
            self.manifest = shards.Manifest.load(shards.root_of(self.path))  # an archive may have run since
            self.con = _connect(self.path, True, wait_s, self.manifest)
        except duckdb.IOException as exc:
            raise LogInUse(f"The decision log {self.path!r} is being written by another process.",
                           "A Klartext command is writing it (e.g. `klartext decide` or `explain --sample`): "
                           "reload the page when it is done.") from exc
        self.suspended = False

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
                f"Set ${pseudonyms.KEY_ENV} or put the key file {self.path}.key next to the log.",
            )
        return pseudonyms.of(self._key, customer_ids)

    # -- registry ---------------------------------------------------------------------------

    def register_strategy(self, strategy: Strategy, in_transaction: bool = False) -> str:
        if strategy.version in self._registered:
            return strategy.version
        with seals.sealed_write(self.con, "strategies", in_transaction or self._atomic) as seq:
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
            with seals.sealed_write(self.con, "models") as seq:
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

    #: The columns of ``models`` a model is rebuilt from (:meth:`model_rows`, :func:`model_from_row`).
    MODEL_COLUMNS = ("artifact", "features", "training_fingerprint", "metrics", "algorithm", "input", "artifact_sha256")

    def model_rows(self, versions: dict[str, str]) -> dict[str, tuple]:
        """The stored rows (:data:`MODEL_COLUMNS`) of these models, by action: what a Spark
        executor rebuilds them from, through the same checks (:func:`model_from_row`)."""
        cols = ", ".join(self._model_column(c) if c in ("input", "artifact_sha256") else c for c in self.MODEL_COLUMNS)
        wanted = pa.table({"version": list(versions.values()), "action_id": list(versions)})  # noqa: F841 (read below)
        cur = self.con.cursor()
        found = {(r[0], r[1]): r[2:] for r in cur.execute(
            f"SELECT m.version, m.action_id, {cols} FROM models m SEMI JOIN wanted w USING (version, action_id)"
        ).fetchall()}
        out = {}
        for action_id, version in versions.items():
            row = found.get((version, action_id))
            if row is None:
                raise LogError(f"Model version {version!r} of action {action_id!r} is not in the log {self.path!r}.",
                               "Register the model before logging decisions made with it.")
            out[action_id] = (version, *row)
        return out

    def load_models(self, versions: dict[str, str]) -> ModelSet:
        missing = {a: v for a, v in versions.items() if (v, a) not in self._model_cache}
        if missing:  # their rows in one read
            for action_id, row in self.model_rows(missing).items():
                self._model_cache.setdefault((row[0], action_id), model_from_row(action_id, row, self.path))
        return ModelSet({a: self._model_cache[(v, a)] for a, v in versions.items()})

    def latest_strategy_version(self) -> str:
        """The version deciding now: the lifecycle's champion where the strategy is managed
        (``klartext strategy``) and has decided, else the newest strategy the log holds."""
        from decision_log import lifecycle

        try:
            champion = lifecycle.current(self).champion
        except LogError:  # a record that does not verify says nothing: the newest strategy, as without one
            champion = None
        if champion is not None and _first(self.con.cursor().execute(
                "SELECT 1 FROM strategies WHERE version = ?", [champion])) is not None:
            return champion
        row = _first(self.con.cursor().execute("SELECT version FROM strategies ORDER BY first_used DESC LIMIT 1"))
        if row is None:
            imported = self.con.cursor().execute("SELECT list(DISTINCT source ORDER BY source), count(*) FROM decisions "
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
        rows = self.con.cursor().execute(  # a cursor: a service's follower calls this beside the writer
            "SELECT action_id, arg_max(version, created) FROM models WHERE action_id IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY action_id", [list(strategy.action_ids)]).fetchall()
        versions = dict(rows)
        missing = [a for a in strategy.action_ids if a not in versions]
        if missing:
            raise LogError(f"The log {self.path!r} holds no model for action {missing[0]!r}.",
                           "Train and register models for this strategy (`klartext demo` does it for the demo).")
        return self.load_models(versions)

    # -- writing ----------------------------------------------------------------------------

    @staticmethod
    def has_shards(path: str | Path) -> bool:
        """Whether the log at ``path`` keeps decisions in shards (then only a read-only open
        reads all of them; a writable one sees the decisions in its file)."""
        path = shards.head_path(str(path))
        return path != ":memory:" and (shards.root_of(path) / shards.MANIFEST).exists()

    @property
    def sharded(self) -> bool:
        """Whether some of the log's decisions are in shards (:mod:`decision_log.shards`), or —
        read-only, while ``klartext serve --workers`` runs — in the workers' live replicas."""
        return self.manifest is not None and (bool(self.manifest.shards) or (
            self.read_only and has_table(self.con, "shard_starts")))

    def history_source(self, strategy: Strategy, now: datetime | None = None) -> str:
        """Where a writer's contact history reads decisions (see
        :func:`decision_log.queries.contact_history`): a read-only log reads every shard
        anyway; a writer reads its file and the shards within the strategy's longest window."""
        manifest = self.manifest if self.sharded else self.history_shards
        if self.read_only or manifest is None or not manifest.shards:
            source = "decisions"
        else:
            since = (now or datetime.now(UTC)) - pd.Timedelta(days=history_days(strategy)).to_pytimedelta()
            source = shards.history_source(manifest, since)
        if self.peers is not None:  # a service worker: the other workers' too
            source = f"(SELECT {peers.COLUMNS} FROM {source} UNION ALL SELECT {peers.COLUMNS} FROM peers.decisions)"
        return source

    def history_outcomes(self) -> str:
        """Where a writer's contact history reads rejections: its file's, the shards' (a
        service worker's sealed file keeps the outcomes it took) and — for a worker — the
        other workers' and the head file's (:mod:`decision_log.peers`)."""
        manifest = self.manifest if self.sharded else self.history_shards
        parts = ["SELECT * FROM outcomes"]
        if not self.read_only and manifest is not None:
            files = [str(s.file(manifest.root, "outcomes")) for s in manifest.live if s.outcomes]
            if files:
                parts.append(f"SELECT * FROM {shards._parquet(files)}")
        if self.peers is not None:
            parts.append(f"SELECT * EXCLUDE ({peers.FILE}) FROM peers.outcomes")
        return "outcomes" if len(parts) == 1 else f"({' UNION ALL BY NAME '.join(parts)})"

    def _head_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the head file's own tables (a read-only sharded log reads views)."""
        return shards.head_cursor(self.con, self.read_only and has_table(self.con, "shard_starts"))

    def _next_seq(self) -> tuple[int, str]:
        if self._head is None:
            row = _first(self._head_cursor().execute("SELECT seq, chain_hash FROM chain ORDER BY seq DESC LIMIT 1"))
            base = self.manifest.tail if self.manifest is not None else (0, integrity.GENESIS)
            self._head = base if row is None else (int(row[0]), row[1])
        return self._head

    def append(self, batch: DecisionBatch, strategy: Strategy, source: str = "klartext",
               customers: np.ndarray | None = None) -> int:
        """Log a batch of decisions with all their candidates, atomically.

        ``customers`` may pass ready pseudonyms; otherwise the raw ids in the batch's
        requests are pseudonymised here.  Returns the number of decisions written.
        """
        pseudo = customers if customers is not None else self.pseudonymise(batch.requests.customer_id)
        return self.append_prepared(prepare(batch, strategy, pseudo, source, keys=self.sealing_keys()))

    def open_inputs(self, decision_ids: list[str], customers: list[str], stored: list[str]) -> list[str | None]:
        """The plain ``inputs`` JSON of these decisions (as stored where they are not sealed);
        None where the customer was erased (their key is gone, see :mod:`decision_log.subjects`)."""
        plain = self.open_inputs_raw(decision_ids, customers, stored)
        for i, text in enumerate(plain):
            if text is not None and text.startswith(rows.COMPACT):
                version = json.loads(text)["s"]
                plain[i] = rows.expand(text, self.load_strategy(version))
        return plain

    def open_inputs_raw(self, decision_ids: list[str], customers: list[str], stored: list[str]) -> list[str | None]:
        """As :meth:`open_inputs`, but a sealed value's plain text stays the compact document
        it was sealed as (:data:`decision_log.rows.COMPACT`) — for readers of many decisions."""
        if not any(subjects.is_sealed(x) for x in stored):
            return list(stored)
        if self.subject_keys is None:
            raise LogError(f"The inputs in {self.path!r} are sealed under the customers' keys, and the log's "
                           "pseudonym key is not available to open them.",
                           f"Put {self.path}.key beside the log or set ${pseudonyms.KEY_ENV}; views that need no "
                           "inputs (funnels, KPIs) work without it.")
        return self.subject_keys.open(customers, decision_ids, stored)

    def reveal(self, dec: pd.DataFrame, cand: pd.DataFrame | None = None) -> pd.DataFrame:
        """``dec`` (columns decision_id, customer, inputs) with its inputs opened and a column
        ``erased`` (True where the customer's key is gone: the inputs are None).  ``cand``
        (columns decision_id — unless ``dec`` is one decision —, action_id, rule, reason), if
        given, gets back, in place, the values of each reason that was stored without them
        because they are the customer's (:func:`decisioning.engine.logged_reason`)."""
        dec = dec.copy()
        stored = dec["inputs"].tolist()
        plain = self.open_inputs(dec["decision_id"].tolist(), dec["customer"].tolist(), stored)
        dec["erased"] = [p is None for p in plain]
        dec["inputs"] = plain
        sealed = {d: p for d, p, s in zip(dec["decision_id"].tolist(), plain, stored)
                  if p is not None and subjects.is_sealed(s)}
        if cand is None or not len(cand) or not sealed:
            return dec
        info = self._strategy_and_channel(list(sealed))
        dids = cand["decision_id"].tolist() if "decision_id" in cand else [dec["decision_id"].iloc[0]] * len(cand)
        docs: dict[str, dict] = {}
        out = []
        for d, a, rule, r in zip(dids, cand["action_id"].tolist(), cand["rule"].tolist(), cand["reason"].tolist()):
            if d in sealed and isinstance(rule, str) and d in info:
                doc = docs.get(d)
                if doc is None:
                    doc = docs[d] = json.loads(sealed[d])
                sv, channel = info[d]
                r = logged_reason(self.load_strategy(sv), rule, a, channel, doc) or r
            out.append(r)
        cand["reason"] = out
        return dec

    def _strategy_and_channel(self, decision_ids: list[str]) -> dict[str, tuple[str, str]]:
        con = self.con.cursor()
        con.register("_k_ids", pd.DataFrame({"decision_id": decision_ids}))
        try:
            rows = con.execute("SELECT decision_id, strategy_version, channel FROM decisions SEMI JOIN _k_ids "
                               "USING (decision_id) WHERE strategy_version IS NOT NULL").fetchall()
        finally:
            con.unregister("_k_ids")
        return {d: (sv, ch) for d, sv, ch in rows}

    def register(self, read_only: bool = False, wait_s: float = 15.0):
        """The compliance register beside this log (:mod:`decision_log.register`), open for a
        ``with`` block (read-only: None where nothing was ever recorded)."""
        return register.opened(self.home, read_only=read_only, wait_s=wait_s, memory_key=id(self))

    def _register_state(self) -> tuple[dict[str, frozenset[str] | None], dict[str, datetime]]:
        """(standing objections, erasures) from the register, re-read whenever another
        process has recorded in it."""
        stamp: tuple = ()
        if self.path != ":memory:":
            reg = register.path_of(self.home)
            for f in (reg, Path(str(reg) + ".wal")):
                try:
                    st = f.stat()
                    stamp += (st.st_ino, st.st_size, st.st_mtime_ns)
                except FileNotFoundError:
                    stamp += (None,)
            if stamp[0] is None:
                return {}, {}
        cached = getattr(self, "_register_cache", None)
        if cached is None or not stamp or cached[0] != stamp:
            with self.register(read_only=True) as reg:
                found = ({}, {}) if reg is None else (reg.objections(), reg.erasures())
            cached = self._register_cache = (stamp, found)
        return cached[1]

    def standing_objections(self) -> dict[str, frozenset[str] | None]:
        """customer pseudonym → the channels they objected to direct marketing on (None: all)."""
        standing = getattr(self, "_standing", None)  # a shard writer's, read by its caller
        return standing if standing is not None else self._register_state()[0]

    def erasures(self) -> dict[str, datetime]:
        """customer pseudonym → when they were erased at their request."""
        return self._register_state()[1]

    def apply_objections(self, requests, strategy: Strategy, pseudonyms: np.ndarray | None = None) -> None:
        """Mark the requests whose customer objected to direct marketing on the request's
        channel (``requests.objection``): the engine then removes every marketing action."""
        standing = self.standing_objections()
        if not standing:
            return
        pseudo = pseudonyms if pseudonyms is not None else self.pseudonymise(requests.customer_id)
        hit = np.flatnonzero(pd.Index(list(standing)).get_indexer(pd.Index(pseudo)) >= 0)
        if not len(hit):
            return
        mask = np.zeros(len(requests), dtype=bool) if requests.objection is None else requests.objection.copy()
        cids = strategy.channel_ids
        for r in hit.tolist():
            channels = standing[pseudo[r]]
            mask[r] = channels is None or cids[int(requests.channel[r])] in channels
        requests.objection = mask

    def sealing_keys(self) -> subjects.SubjectKeys | None:
        """The keys new decisions are sealed with (None: this log stores inputs in clear)."""
        if not self.seals_inputs:
            return None
        if self.subject_keys is None:
            raise LogError(f"The log {self.path!r} seals inputs, but its pseudonym key is not available.",
                           f"Put {self.path}.key beside the log or set ${pseudonyms.KEY_ENV}.")
        return self.subject_keys

    def append_prepared(self, prepared: PreparedBatch) -> int:
        """Number, chain and insert a batch made ready by :func:`~decision_log.rows.prepare`
        (or ``prepare_imported``), in one transaction (the caller's inside :meth:`atomic`)."""
        if self.read_only:
            raise LogError(f"The log {self.path!r} is open read-only.", "Open it without read_only to write.")
        if prepared.n == 0:
            return 0
        return self.insert_chained([self.chain_prepared(prepared)])

    def chain_prepared(self, prepared: PreparedBatch, after: tuple[int, str] | None = None) -> Chained:
        """The rows of ``prepared`` numbered and chained after ``after`` (the log's head by
        default); nothing is written and the head does not move."""
        last_seq, prev = after if after is not None else self._next_seq()
        seq = np.arange(last_seq + 1, last_seq + 1 + prepared.n, dtype=np.int64)
        records, chained = integrity.record_and_chain(integrity.digests_with_seq(seq, prepared.tails),
                                                      prepared.candidate_digests, prev)
        tables = {
            "_k_dec": prepared.decisions.add_column(0, "seq", pa.array(seq)),
            "_k_cand": prepared.candidates,
            "_k_chain": pa.table({"seq": seq, "decision_id": prepared.decisions.column("decision_id"),
                                  "record_hash": integrity.hex_strings(records),
                                  "chain_hash": integrity.hex_strings(chained)})}
        return Chained(tables, prepared.n, (last_seq, prev), (int(seq[-1]), chained[-1].tobytes().decode()),
                       prepared.strategy)

    def insert_chained(self, batches: list[Chained]) -> int:
        """Insert chained batches (consecutive, the first following the log's head) in one
        transaction (the caller's inside :meth:`atomic`); the head moves to the last one's."""
        if not batches:
            return 0
        n = sum(b.n for b in batches)
        con = self.con
        strategies = {b.strategy.version: b.strategy for b in batches if b.strategy is not None}
        new = [version for version in strategies if version not in self._registered]
        tables = batches[0].tables if len(batches) == 1 else {
            k: pa.concat_tables([b.tables[k] for b in batches]) for k in batches[0].tables}
        begun = False
        try:
            # one call for the whole transaction (a live group's statements cost more to plan and
            # to hand over than to run)
            inserts = INSERT_CHAINED
            begun = not self._atomic  # else part of the caller's transaction (see atomic())
            if begun and not new:
                inserts = f"BEGIN TRANSACTION; {inserts}; COMMIT"
            elif begun:
                con.execute("BEGIN TRANSACTION")
                inserts += "; COMMIT"
            for version in new:  # the first batch of a strategy registers it in the same transaction
                self.register_strategy(strategies[version], in_transaction=True)
            execute_over(con, inserts, **tables)
            self._head = batches[-1].head
        except Exception as exc:
            if begun:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:  # the statement that failed ended it already
                    pass
            for version in new:
                self._registered.discard(version)
            if isinstance(exc, duckdb.Error):
                raise LogError(f"Writing {n} decisions to {self.path!r} failed: {exc}",
                               "Nothing was written; check free disk space and that no other process holds the file.") from exc
            raise
        return n

    def append_outcomes(self, outcomes: pd.DataFrame, *, checked: bool = False, elsewhere: bool = False) -> int:
        """Log outcomes (columns: decision_id, action_id, outcome, revenue, margin, churned, ts_us).

        With ``checked`` (outcomes reported from outside, e.g. ``POST /outcome``) each row must
        name a logged decision and, if any, one of its actions; revenue and margin must be
        finite; there is one outcome per decision and action: the same one again is not logged
        a second time (returns 0), a different one is a :class:`ConflictError`, and so is a
        churn flag that contradicts one logged for the decision.  ``elsewhere``: the rows were
        checked against the whole log already (a service worker's outcome for a decision
        another worker made), so their decisions need not be in this file.
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
        return self.append_outcome_table(tbl, in_file=not elsewhere)

    def append_outcome_table(self, tbl: pa.Table, in_file: bool = True) -> int:
        """Log outcomes given as an Arrow table with the ``outcomes`` columns (less
        ``seal_seq``; a missing revenue or margin stays NULL: not known, not 0), in one sealed
        write.  Every row must name a logged decision (``in_file``: of this file or its shards; a service
        worker's outcome for another worker's decision was checked against the whole log)."""
        con = self.con
        con.register("_k_out", tbl)
        try:
            unknown = None if not in_file else _first(con.execute(
                f"SELECT o.decision_id FROM _k_out o ANTI JOIN {self.summary_rows().decisions} d USING (decision_id) "
                "LIMIT 1"))
            if unknown:
                raise LogError(f"Outcome for unknown decision {unknown[0]!r}.",
                               "Log outcomes only for decisions in this log.")
            with seals.sealed_write(con, "outcomes", in_transaction=self._atomic) as seq:
                con.execute("INSERT INTO outcomes BY NAME SELECT *, ?::BIGINT AS seal_seq FROM _k_out", [seq])
        finally:
            con.unregister("_k_out")
        return len(tbl)

    def _checked_outcomes(self, outcomes: pd.DataFrame, con: duckdb.DuckDBPyConnection | None = None,
                          decisions: bool = True) -> pd.DataFrame:
        """The rows of ``outcomes`` to log (a retry's are left out), each checked against the
        decisions of the log ``con`` reads (default: this file and its shards; a service worker checks one it
        did not make against the whole log).  Without ``decisions`` only against the outcomes
        logged there (a worker's own decision: another worker may have taken its outcome)."""
        keep = []
        # this file's: with its shards (an outcome may come after its decision was archived)
        src = self.summary_rows() if con is None and not self.read_only else summaries.Rows()
        con = con or self.con.cursor()

        def logged(table: str, where: str, args: list) -> bool:
            """Rows in the file first, then — only where none is there — in the file and its
            shards (the Parquet files are read for an archived decision, not for every outcome)."""
            return any(con.execute(f"SELECT count(*) FROM {rel} WHERE {where}", args).fetchall()[0][0]
                       for rel in dict.fromkeys((table, getattr(src, table))))

        for r in outcomes.itertuples(index=False):
            did, aid = r.decision_id, (None if pd.isna(r.action_id) else r.action_id)
            for name in ("revenue", "margin"):
                v = getattr(r, name)
                if not (isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= MAX_AMOUNT):
                    raise InputError(f"{name} must be a finite amount of at most {MAX_AMOUNT:,.0f}, got {v!r}.",
                                     f"Send the {name} in the strategy's currency.")
            if decisions and not logged("decisions", "decision_id = ?", [did]):
                raise LookupError(did)
            if decisions and aid is not None and not logged("candidates", "decision_id = ? AND action_id = ?",
                                                            [did, aid]):
                raise InputError(f"Action {aid!r} is not an action of decision {did!r}.",
                                 "Name an action of the decision's catalog (see GET /decisions/{id}), or none.")
            same = con.execute(f"SELECT outcome, revenue, margin, churned FROM {src.outcomes} WHERE decision_id = ? "
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
                other = con.execute(f"SELECT churned FROM {src.outcomes} WHERE decision_id = ? AND churned IS NOT NULL "
                                    "AND churned <> ? LIMIT 1", [did, new[3]]).fetchall()
                if other:
                    raise ConflictError(f"Decision {did!r} is logged with churned={str(other[0][0]).lower()}; "
                                        f"churned={str(new[3]).lower()} contradicts it.",
                                        "Churn is per customer and decision: send the same value for every action.")
            keep.append(r)
        return pd.DataFrame(keep, columns=outcomes.columns)

    @property
    def in_transaction(self) -> bool:
        """Inside :meth:`atomic`: every write joins its transaction."""
        return self._atomic

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
        """Settings for a long run of large appends (a batch job): DuckDB on one thread, so the
        deciding and preparing threads have the other cores (more DuckDB threads did not make
        the job faster; see docs/benchmarks.md)."""
        threads = self.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        self.con.execute("SET threads = 1")
        try:
            yield
        finally:
            self.con.execute(f"SET threads = {int(threads)}")

    def verify(self, since: integrity.Anchor | None = None,
               progress: Callable[[int, int], None] | None = None) -> integrity.VerifyResult:
        """The hash chain, every sealed table of the log, its shards (:mod:`decision_log.shards`)
        and its compliance register's (``since``: only what came after an earlier full
        verification, see :func:`decision_log.integrity.verify`; ``progress(done, total)``
        after each chunk of decisions)."""
        if self.sharded:
            res = self._verify_sharded(since, progress)
        else:
            res = integrity.verify(self.con.cursor(), since=since, progress=progress)
        if not res.ok:
            return res
        waiting = self.manifest is not None and len(shards.worker_files(self.manifest.root)) - len(
            shards.live_workers(self.manifest.root))
        if waiting:
            res.notes.append(f"{waiting} worker file(s) of a service that stopped without sealing them hold decisions "
                             "not yet in this check: `klartext serve --workers N` or `klartext archive` seals them")
        if self.replica is None and self.path != ":memory:":
            try:
                unloaded = journal.pending(self._head_cursor(), self.path, self.manifest.tail)
            except LogError as exc:
                res.ok, res.table, res.problem = False, "journal", f"{exc.message} {exc.hint}"
                return res
            if unloaded:
                res.notes.append(f"{unloaded:,} acknowledged decision(s) of a service that stopped before loading them "
                                 f"wait in {journal.path_of(self.path).name}, not yet in this check: the next open for "
                                 "writing (`klartext serve` again) loads them")
        with self.register(read_only=True) as reg:
            if reg is None:
                return res
            problem = reg.verify()
            res.register_head = reg.head()
            counts = {t.replace("_", " "): reg.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                      for t in ("objections", "erasures", "reviews", "access", "strategy_steps")
                      if register._has(reg.con, t)}
        if problem is not None:
            res.ok = False
            res.table = f"{problem.table} (compliance register)"
            res.problem = problem.problem
            return res
        res.notes.append("compliance register intact: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()) +
                         f" (seal head {res.register_head[1][:16]}…)")
        return res

    def _verify_sharded(self, since: integrity.Anchor | None,
                        progress: Callable[[int, int], None] | None) -> integrity.VerifyResult:
        """:meth:`verify` of a log with shards: the manifest, every shard, then the head's own
        decisions from the last shard's chain hash on."""
        cur = self._head_cursor()
        tail_seq, tail_hash = self.manifest.tail
        in_shards = self.manifest.total()
        in_head = int(cur.execute("SELECT count(*) FROM decisions").fetchall()[0][0])
        total = in_shards + in_head
        report = None if progress is None else (lambda done, _n: progress(done, total))
        bad = shards.verify(self.manifest, cur, progress=report)
        if bad is not None:
            bad.n_decisions = total
            return bad
        if since is not None and since.seq <= tail_seq:  # the anchor is in a shard: re-read the head whole
            since = None
        res = integrity.verify(cur, since=since, genesis=tail_hash, progress=None if progress is None else (
            lambda done, _n: progress(in_shards + done, total)))
        first = cur.execute("SELECT min(seq) FROM chain").fetchall()[0][0]
        if res.ok and first is not None and first != tail_seq + 1:
            res = integrity.VerifyResult(False, total, res.head_hash, int(first), None,
                                         f"the log's own decisions start at position {first}, but its last shard ends "
                                         f"at {tail_seq} (decisions were deleted or archived twice)")
        res.n_decisions = total
        if res.ok:  # a running service's workers: each live replica's own chain (sealed into a shard on stop)
            workers = shards.attached_workers(self.con)
            n_live = 0
            for alias in workers:
                w = integrity.verify(shards.worker_cursor(self.con, alias), rest=False)
                if not w.ok:
                    return integrity.VerifyResult(False, total, res.head_hash, None, w.first_bad_decision,
                                                  f"in the live replica of a running service worker: {w.problem}")
                n_live += w.n_decisions
            if workers:
                res.notes.append(f"{n_live:,} decisions of {len(workers)} running service worker(s) checked in their "
                                 "live replicas (each worker's file is verified again when it is sealed into a shard)")
            live, purged = self.manifest.live, [s for s in self.manifest.shards if s.purged is not None]
            if live:
                res.notes.insert(0, f"{len(live)} shard(s) intact: decisions {live[0].first_seq:,} to {tail_seq:,} in "
                                    f"{self.manifest.root} (manifest head {self.manifest.head_link[:16]}…)")
            for key, record in shards.purge_records(cur).items():
                res.notes.append(f"{record['decisions']:,} decisions (positions {record['shards'][0]['first_seq']:,} "
                                 f"to {record['shards'][-1]['last_seq']:,}) were purged on {record['at'][:10]} by "
                                 f"{record['by']} ({key}: {record['reason']}; signed by key "
                                 f"{record['public_key'][:16]}…)")
            if purged and not live and not in_head:
                res.notes.append("every decision of the log was purged")
            # the dashboard's summaries, counted over the whole log (the head's check above
            # could not: it reads the head's rows only)
            wrong = summaries.check(self.con, after_seal=0 if since is None else since.seal_seq,
                                    rows=self.summary_rows())
            if wrong is not None:
                return integrity.VerifyResult(False, total, res.head_hash, table=wrong[0], problem=wrong[1])
        return res

    def links(self, progress: Callable[[int, int], None] | None = None) -> integrity.VerifyResult:
        """The quick check of :func:`decision_log.integrity.links`, over every shard and the head;
        ``progress(done, total)`` in decisions, as it goes."""
        if not self.sharded:
            return integrity.links(self.con.cursor(), progress=progress)
        cur = self._head_cursor()
        problem = shards.check_manifest(self.manifest, shards.sealed_links(cur), shards.purge_records(cur))
        total = self.manifest.total() + int(cur.execute("SELECT count(*) FROM decisions").fetchall()[0][0])
        if problem:
            return integrity.VerifyResult(False, total, self.manifest.head_link, problem=problem, table="shards")
        before = 0

        def step(done: int, _n: int) -> None:
            if progress is not None:
                progress(before + done, total)

        for s in self.manifest.live:
            con = shards.shard_connection(self.manifest.root, s)
            try:
                res = integrity.links(con, s.prev, progress=step)
            finally:
                con.close()
            if res.ok and res.head_hash != s.head:
                res = integrity.VerifyResult(False, total, res.head_hash, s.last_seq, None,
                                             "its chain ends at another hash than the manifest sealed")
            if not res.ok:
                res.problem, res.n_decisions = f"in shard {s.name}: {res.problem}", total
                return res
            before += res.n_decisions
        res = integrity.links(cur, self.manifest.tail[1], progress=step)
        res.n_decisions = total
        return res

    def last_seq(self) -> int:
        """The position of the newest decision in the chain (0: none yet)."""
        row = self._head_cursor().execute("SELECT max(seq) FROM chain").fetchall()[0][0]
        return int(row) if row is not None else (self.manifest.tail[0] if self.manifest is not None else 0)

    def archive(self, before: datetime) -> shards.Shard | None:
        """Seal the oldest decisions — every one up to the first made at or after ``before`` —
        into a new Parquet shard (:mod:`decision_log.shards`) and remove them from the file.
        The chain goes on across the cut: the shard starts from the chain hash before its
        first decision and the file's decisions from the shard's last.  Returns the shard
        (None: nothing is older than ``before``).

        The shard is written (hidden) first; its sealed link and the removal of its decisions
        from the file commit in one transaction; then it is moved into place and listed in the
        manifest.  Killed before the commit, the next writable open removes the unfinished
        shard (the decisions are still in the file); killed after it, it finishes the move."""
        if self.read_only:
            raise LogError(f"The log {self.path!r} is open read-only.", "Open it without read_only to archive.")
        if self.path == ":memory:":
            raise LogError("A log in memory cannot be archived.", "Archive a log file (`--db PATH`).")
        lo, hi_all = self.con.execute("SELECT min(seq), max(seq) FROM decisions").fetchall()[0]
        if lo is None:
            return None
        kept = self.con.execute("SELECT min(seq) FROM decisions WHERE ts >= ?", [before]).fetchall()[0][0]
        hi = hi_all if kept is None else int(kept) - 1
        if hi < lo:
            return None
        tail_seq, tail_hash = self.manifest.tail
        if lo != tail_seq + 1:
            raise LogError(f"The log {self.path!r} starts at decision {lo}, but its shards end at {tail_seq}.",
                           "Run `klartext verify` on it: decisions were deleted or archived twice.")
        root = self.manifest.root
        root.mkdir(exist_ok=True)
        with memory_limit(self.con, ARCHIVE_MEMORY):
            shard = shards.write(self.con, root, self.manifest.next_name(), int(lo), int(hi), tail_hash)
            ids = f"SELECT decision_id FROM decisions WHERE seq BETWEEN {int(lo)} AND {int(hi)}"
            try:
                with self.atomic():
                    (shard,) = shards.seal_links(self.con, self.manifest, [shard])
                    self.con.execute(f"DELETE FROM candidates WHERE decision_id IN ({ids})")
                    self.con.execute(f"DELETE FROM chain WHERE seq BETWEEN {int(lo)} AND {int(hi)}")
                    self.con.execute(f"DELETE FROM decisions WHERE seq BETWEEN {int(lo)} AND {int(hi)}")
            except BaseException:
                shards.recover(self.con, self.manifest)
                raise
            shards.publish(self.manifest, [shard])
            self.con.execute("CHECKPOINT")
        return shard

    @staticmethod
    def _worker_shard(con: duckdb.DuckDBPyConnection, f: Path, root: Path, name: str, base: int, n: int,
                      into: Path | None = None) -> shards.Shard:
        """A worker file's ``n`` decisions (on ``con``) checked, moved to the positions after
        ``base``, chained again from the genesis and written as shard ``name`` with every
        outcome the worker recorded (pending, or ``into``), under the archive's memory limit."""
        with memory_limit(con, ARCHIVE_MEMORY):
            integrity.renumber(con, base + 1, str(f))
            return shards.write(con, root, name, base + 1, base + n, integrity.GENESIS, with_outcomes="all",
                                into=into)

    @staticmethod
    def prepare_worker_seal(head: str, f: Path) -> shards.Shard | None:
        """The slow part of sealing one stopped worker's file, done before the head is held
        (:meth:`klartext.workers.Supervisor.rotate`): its journal loaded and
        :meth:`_worker_shard` after the log's last shard, under the next shard name, into
        :func:`decision_log.shards.prepared`.  Returns that shard's entry, which
        :meth:`seal_workers` (``prepared``) only links and publishes where the log has not
        moved meanwhile (else it seals the file itself).  None: an empty file."""
        root = shards.root_of(head)
        manifest = shards.Manifest.load(root)
        con = while_locked(lambda: duckdb.connect(str(f)), 10.0)
        try:
            journal.recover(con, f)
            n = con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
            if not n:
                return None
            name = manifest.next_name()
            return DecisionLog._worker_shard(con, f, root, name, manifest.tail[0], n, into=shards.prepared(root, name))
        finally:
            con.close()

    def seal_workers(self, say: Callable[[str], None] | None = None,
                     only: list[Path] | None = None, prepared: shards.Shard | None = None) -> list[shards.Shard]:
        """Seal the files the service's workers left (:meth:`worker`) into shards, in worker
        order, after the file's own decisions: each worker file's chain is checked, its
        decisions are moved to the positions after the last shard and chained again from the
        genesis (:func:`decision_log.integrity.renumber`), and written as a Parquet shard with
        every outcome the worker recorded; the shards' links and the files' ids are sealed in
        one transaction, then the files are removed.  A file whose id the log sealed already
        (killed after the commit) is only removed.  Run by ``klartext serve --workers`` before
        its workers start and after they stop, and for one stopped worker while the others run
        (``only``: those files, ``prepared``: the shard :meth:`prepare_worker_seal` wrote of
        the one; see :meth:`klartext.workers.Supervisor.rotate`); returns the new shards."""
        say = say or (lambda _m: None)
        root = self.manifest.root
        files = shards.worker_files(root)
        if only is not None:
            files = [f for f in files if f.resolve() in {Path(o).resolve() for o in only}]
        if not files:
            return []
        done = {k[len(shards.WORKER_META):] for (k,) in self._head_cursor().execute(
            "SELECT key FROM meta WHERE key LIKE ?", [shards.WORKER_META + "%"]).fetchall()}
        issued = {k[len(shards.ISSUED_META):] for (k,) in self._head_cursor().execute(
            "SELECT key FROM meta WHERE key LIKE ?", [shards.ISSUED_META + "%"]).fetchall()}
        kid = _first(self._head_cursor().execute("SELECT value FROM meta WHERE key = 'key_id'"))
        todo, gone = [], []
        try:
            for f in files:
                try:
                    con = while_locked(lambda f=f: duckdb.connect(str(f)), 10.0)  # (its WAL is replayed here)
                except duckdb.IOException as exc:
                    raise LogInUse(f"{f.name} of the log {self.path!r} is held by a running service worker.",
                                   "Its decisions are sealed when that service stops (Ctrl-C or SIGTERM to "
                                   "`klartext serve --workers`); run this again then.") from exc
                fid = _first(con.execute("SELECT value FROM meta WHERE key = 'worker_file_id'"))
                try:
                    journal.recover(con, f)  # what the worker acknowledged and had not loaded when it was stopped
                except BaseException:
                    con.close()
                    raise
                n = con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
                # (a worker that only took outcomes — of other workers' decisions — made no decision:
                # its outcomes go into this file, below)
                if fid is not None and fid[0] in done or not n and not con.execute(
                        "SELECT count(*) FROM outcomes").fetchall()[0][0]:
                    con.close()
                    gone.append(f)
                    continue
                todo.append((f, con, None if fid is None else fid[0], int(n)))
                wkid = _first(con.execute("SELECT value FROM meta WHERE key = 'key_id'"))
                if fid is None or fid[0] not in issued:
                    raise LogError(f"{f} holds {n:,} decisions, but no service of this log started it (its file id "
                                   "was never issued in the log): it was placed there, not written by a worker.",
                                   "Nothing was sealed. Move the file out of the log's folder to examine it, then "
                                   "run this again.")
                if kid is not None and (wkid is None or wkid[0] != kid[0]):
                    raise LogError(f"{f} was written with another pseudonym key (key id "
                                   f"{wkid[0] if wkid else 'none'}) than the log's ({kid[0]}).",
                                   "Nothing was sealed. Move the file out of the log's folder to examine it, then "
                                   "run this again.")
            new: list[shards.Shard] = []
            if todo:
                if self.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]:
                    self.archive(datetime(9999, 1, 1, tzinfo=UTC))  # the file's own decisions come first
                base, name = self.manifest.tail[0], int(self.manifest.next_name())
                root.mkdir(exist_ok=True)
                for f, con, _fid, n in todo:
                    if not n:
                        continue
                    ready = prepared is not None and prepared.name == f"{name:06d}" and prepared.decisions == n \
                        and (prepared.first_seq, prepared.last_seq) == (base + 1, base + n) \
                        and shards.prepared(root, prepared.name).is_dir() \
                        and con.execute("SELECT min(seq) FROM decisions").fetchall()[0][0] == base + 1
                    for version, text in con.execute("SELECT version, text FROM strategies").fetchall():
                        if version not in self._registered and not self.con.execute(
                                "SELECT count(*) FROM strategies WHERE version = ?", [version]).fetchall()[0][0]:
                            self.register_strategy(parse_strategy(text, source=f"{f.stem}'s strategy {version}"))
                    if ready:  # checked, moved and written before the head was held: only linked here
                        shutil.rmtree(shards.pending(root, prepared.name), ignore_errors=True)
                        os.replace(shards.prepared(root, prepared.name), shards.pending(root, prepared.name))
                        new.append(prepared)
                    else:
                        say(f"Sealing {n:,} decisions of {f.stem} into shard {name:06d}")
                        new.append(self._worker_shard(con, f, root, f"{name:06d}", base, n))
                    base, name = base + n, name + 1
                try:
                    with self.atomic():
                        linked = shards.seal_links(self.con, self.manifest, new)
                        for f, con, fid, n in todo:
                            if not n:  # only outcomes (their decisions were checked by the worker): into this file
                                kept = con.sql("SELECT * EXCLUDE (seal_seq) FROM outcomes ORDER BY rowid").to_arrow_table()
                                say(f"{kept.num_rows:,} outcome(s) that {f.stem} took into the log's file")
                                self.append_outcome_table(kept, in_file=False)
                            seals.insert_meta(self.con, shards.WORKER_META + fid, "sealed", in_transaction=True)
                except BaseException:
                    shards.recover(self.con, self.manifest)
                    raise
                shards.publish(self.manifest, linked)
                self._head = None
                new = linked
        finally:
            for _f, con, _fid, _n in todo:
                con.close()
        for f in [*gone, *(t[0] for t in todo)]:
            shards.remove_worker_file(f)
        for p in root.glob(".prepared-*"):  # (one a rotation prepared and could not use)
            shutil.rmtree(p, ignore_errors=True)
        return new

    #: AI Act Art. 19: deployers keep the logs of a high-risk system at least six months.
    MIN_RETENTION_DAYS = 183

    def purge(self, before: datetime, key, by: str, reason: str, allow_under_six_months: bool = False
              ) -> dict | None:
        """Delete the oldest decisions — whole shards, every decision in them made before
        ``before`` — past the retention period, and seal a purge record signed with ``key``
        (an Ed25519 key from ``klartext keygen``) that names each deleted shard, its positions,
        counts and chain link: ``verify`` then tells the purge from a deletion.  The file's own
        decisions before ``before`` are archived into a shard first.  Returns the record (None:
        nothing to purge).  Cached explanations of the purged decisions are deleted with them.

        Decisions younger than six months (AI Act Art. 19) are refused unless
        ``allow_under_six_months``."""
        if self.read_only:
            raise LogError(f"The log {self.path!r} is open read-only.", "Open it without read_only to purge.")
        youngest_allowed = datetime.now(UTC) - pd.Timedelta(days=self.MIN_RETENTION_DAYS).to_pytimedelta()
        if before > youngest_allowed and not allow_under_six_months:
            raise InputError(f"Purging before {before:%Y-%m-%d} would delete decisions younger than six months "
                             f"(before {youngest_allowed:%Y-%m-%d} is the latest allowed).",
                             "The AI Act (Art. 19) asks deployers to keep the logs at least six months: purge before "
                             "an earlier day (e.g. --before 365d), or pass --allow-under-six-months where another "
                             "law requires it (and say which in --reason).")
        self.archive(before)
        cur = self.con
        victims = []
        for s in self.manifest.live:  # (the manifest's times are sealed with its links)
            last_ts = datetime.fromisoformat(s.last_ts)
            if last_ts >= before:
                break
            victims.append((s, last_ts))
        if not victims:
            return None
        n = 1 + len(shards.purge_records(cur))
        record = shards.sign_purge({
            "log": Path(self.path).name, "before": before.isoformat(), "at": datetime.now(UTC).isoformat(
                timespec="seconds"), "by": by, "reason": reason,
            "decisions": sum(s.decisions for s, _ in victims),
            "shards": [{"name": s.name, "first_seq": s.first_seq, "last_seq": s.last_seq, "decisions": s.decisions,
                        "head": s.head, "link": s.link, "newest": ts.isoformat()} for s, ts in victims],
        }, key)
        ids = shards._parquet([str(s.file(self.manifest.root, "decisions")) for s, _ in victims])
        gone = {s.name for s, _ in victims}
        kept = shards.Manifest(self.manifest.root, [s for s in self.manifest.shards if s.name not in gone])
        first = min(datetime.fromisoformat(s.first_ts) for s, _ in victims).astimezone(UTC).date()
        days = [first + timedelta(days=i) for i in range((max(ts for _, ts in victims).astimezone(UTC).date()
                                                          - first).days + 1)]
        with self.atomic():
            seals.insert_meta(cur, f"{shards.PURGE_PREFIX}{n}", json.dumps(record), in_transaction=True)
            cur.execute(f"DELETE FROM explanations WHERE decision_id IN (SELECT decision_id FROM {ids})")
            if summaries.kept(cur):  # the purged days' sums without the purged decisions, in the same commit
                summaries.refresh(cur, in_transaction=True, rows=shards.summary_rows(kept), also=days)
        shards.finish_purges(cur, self.manifest)
        return record

    def verify_and_record(self, actor: str, via: str) -> integrity.VerifyResult:
        """A full :meth:`verify`, recorded in the compliance register (when there is one or it
        can be made) so that later checks — the governance report's — can start from it."""
        import time as _time

        t = _time.perf_counter()
        res = self.verify()
        secs = _time.perf_counter() - t
        if self.path != ":memory:":
            try:
                with self.register() as reg:
                    if reg is not None:
                        reg.record_verification(actor, via, res.ok, res.n_decisions, self.last_seq(), res.head_hash,
                                                res.seal_head, secs)
            except KlartextError:  # the register is busy or read-only here: the result stands unrecorded
                pass
        return res


def model_from_row(action_id: str, row: tuple, where: str) -> PropensityModel:
    """A model from its stored row (version, then :data:`DecisionLog.MODEL_COLUMNS`): the
    artifact is checked against its registered SHA-256 before it is deserialised.

    The same row read again — by the next live replica of a log a service writes, or after a
    writer changed the file the dashboard reads — gives the model already built from it in
    this process (deserialising and checking a tree model takes about 0.1 s): the cache is
    keyed by the artifact's own SHA-256 and every other column the model is built from, so a
    model is reused only for a row that would build the very same one."""
    version, artifact, features, fingerprint, metrics, algorithm, input_, sha = row
    digest = hashlib.sha256(artifact).hexdigest()
    if sha is not None and digest != sha:
        raise LogError(f"The stored artifact of model {version!r} (action {action_id!r}) does not match "
                       f"its registered SHA-256 {sha[:16]}…; it was not loaded.",
                       f"The models table of {where} was changed after registration: run `klartext verify` and "
                       "restore the log from a trusted copy.")
    key = (action_id, version, digest, tuple(features), fingerprint, metrics, algorithm, input_)
    return _BUILT.get_or_build(key, lambda: PropensityModel.from_bytes(
        artifact, action_id, tuple(features), fingerprint, json.loads(metrics), algorithm, version=version,
        input=json.loads(input_) if input_ else None))


#: Models built from stored rows in this process, the most recently used kept (:func:`model_from_row`).
#: (an artifact of the demo is up to 0.8 MB: 64 is two generations of its 29 models, and some)
_BUILT: BoundedCache[PropensityModel] = BoundedCache(64)


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


def history_days(strategy: Strategy) -> float:
    """The longest window the strategy's contact limits and suppression look back."""
    return max([lim.period_days for lim in strategy.contact_limits] +
               ([strategy.suppression.within_days] if strategy.suppression is not None else []), default=0)


def _put_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    """A meta entry, written once and sealed."""
    seals.put_meta(con, key, value)
