"""Reading a decision log while a service holds it: two rotating replicas.

DuckDB lets one process open a file read-write, and while it does no other process can open
it at all — not even read-only.  So ``klartext serve``, which must keep the log open to
commit every decision, would lock the dashboard out.  The design:

* Beside ``log.duckdb`` the service keeps two replica files, ``log.duckdb.live/a.duckdb``
  and ``b.duckdb``, and a ``manifest.json`` saying which holds what.
* A **replicator** thread in the service (:class:`Replicator`) wakes about once a second.
  If the log has grown, it attaches one replica — the older one, or the other one when a
  reader holds it (a read-only open locks a DuckDB file against writers) — and copies the
  rows appended since that replica's last update, table by table, by ``rowid`` (the log is
  append-only, so new rows have higher row ids; DuckDB skips the old row groups).  One
  transaction per update, read from one snapshot of the log, so a replica always holds
  whole decisions.  Then it rewrites the manifest (atomically, by rename).  It never waits
  for a reader and runs beside the service's writers: DuckDB's MVCC lets it read while
  decisions are committed.
* A **reader** (the dashboard, any ``klartext`` command that reads) asks for the log, finds
  it locked, and :func:`open_replica` opens the freshest replica read-only instead.  The
  dashboard lets go of a replica as soon as a newer one exists and no page run uses the old
  one, so the replicator can refresh it; it sees decisions about ``interval_s`` + one page
  run old.

A replica is the log's own tables, row for row, so everything that reads a log — queries,
replay, ``verify`` — works on it unchanged.  The pseudonym key stays the source's
(``log.duckdb.key``).  Replicas are rebuilt from scratch when they do not match the log
(another file at the same path, a log rewritten while the service was down).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from decision_log import summaries
from decisioning.errors import LogError

if TYPE_CHECKING:
    from decision_log.store import DecisionLog

#: The tables a replica copies (all of the log's tables are append-only).
TABLES = ("meta", "strategies", "models", "decisions", "candidates", "chain", "outcomes", "explanations", "seals", "stages",
          *summaries.SEALED)  # (the dashboard's summaries only grow too: a refresh appends)
NAMES = ("a", "b")
REPLICA_ROW_GROUP = 16_384
READERS = "readers"  #: touched by every reader that asks for the replicas


def live_dir(path: str | Path) -> Path:
    return Path(str(path) + ".live")


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica as the manifest describes it."""

    name: str
    path: str
    generation: int  #: increases with every update of either replica
    decisions: int
    updated: str  #: ISO time of the update
    source: str
    service_pid: int


def manifest(path: str | Path) -> dict | None:
    """The manifest of the replicas of the log at ``path``, or None when there is none."""
    f = live_dir(path) / "manifest.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process nobody has reaped yet (a zombie) still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def replicas(path: str | Path) -> list[ReplicaInfo]:
    """The replicas of a log held by a running service, freshest first (empty when no
    service holds it).  Asking counts as reading: it keeps the replicator refreshing."""
    m = manifest(path)
    if not m or not _pid_alive(int(m.get("service_pid", -1))):
        return []
    _note_reader(path)
    out = [ReplicaInfo(name, r["path"], int(r["generation"]), int(r["decisions"]), r["updated"], m["source"],
                       int(m["service_pid"]))
           for name, r in m.get("replicas", {}).items()]
    return sorted(out, key=lambda r: -r.generation)


def _note_reader(path: str | Path) -> None:
    """Touch the live folder's ``readers`` file: a reader is here (see :class:`Replicator`)."""
    f = live_dir(path) / READERS
    try:
        os.utime(f)
    except FileNotFoundError:
        try:
            f.touch()
        except OSError:
            pass
    except OSError:  # a read-only folder: the replicator keeps its idle timeout
        pass


def open_replica(path: str | Path, newer_than: int = -1, wait_s: float = 2.0,
                 connect=None) -> tuple[duckdb.DuckDBPyConnection, ReplicaInfo] | None:
    """Open the freshest replica of ``path``, read-only; None when no service keeps one newer
    than ``newer_than``.  While the service refreshes the freshest (it is locked for a
    fraction of a second) the reader waits for it, up to ``wait_s``, and only then takes
    the other one: that may be much older when a reader has held it for long.  ``connect``
    opens a replica file (default: read-only; a sharded log's reader unions its shards)."""
    connect = connect or (lambda p: duckdb.connect(p, read_only=True))
    deadline = time.monotonic() + wait_s
    while True:
        found = replicas(path)
        if not found or found[0].generation <= newer_than:
            return None
        try:
            return connect(found[0].path), found[0]
        except duckdb.Error:  # being refreshed right now
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
    for info in found[1:]:
        if info.generation <= newer_than:
            return None
        try:
            return connect(info.path), info
        except duckdb.Error:
            continue
    return None


class Replicator:
    """Keeps the two replicas of a log fresh; runs in the service's process (see the module
    docstring).  ``interval_s``: how often it looks for new rows.

    It copies only while someone reads: both replicas are made when the service starts, and
    after that a replica is refreshed only if a reader asked for the replicas (every reader
    does, through :func:`replicas`) within the last ``idle_after_s``.  A service nobody
    watches spends no CPU on copies; a dashboard that comes back sees a fresh replica about
    ``interval_s`` after its first page run, which shows how old its data are."""

    def __init__(self, log: DecisionLog, interval_s: float = 1.0, idle_after_s: float = 60.0) -> None:
        self.source = str(Path(log.path).resolve())
        self.dir = live_dir(self.source)
        self.dir.mkdir(exist_ok=True)
        self.con = log.con.cursor()  # its own cursor: reads a snapshot beside the writers
        self.interval = interval_s
        self.idle_after = idle_after_s
        self.idle_ticks = 0  # ticks skipped because no reader asked lately
        self.generation = 0
        self.updates = 0
        self.skipped = 0  # ticks where both replicas were held by readers
        self.error: str | None = None
        self.state: dict[str, dict] = {}
        self._marks: dict[str, dict[str, int]] = {}  # replica → table → next rowid to copy
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="klartext-replicator", daemon=True)
        self._thread.start()
        _RUNNING.add(self)

    def _run(self) -> None:
        from decision_log.writer import lower_thread_priority  # (writer → store → live: imported here)

        lower_thread_priority(10)  # copying replicas never takes a core from deciding and committing
        while not self._stop.is_set():
            try:
                if self.wanted():
                    self.refresh()
                else:
                    self.idle_ticks += 1
                self.error = None
            except Exception as exc:  # noqa: BLE001 - the service goes on; /health shows it
                self.error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.interval)

    def wanted(self) -> bool:
        """Whether to refresh now: a replica is still missing, or a reader asked lately."""
        if len(self.state) < len(NAMES):
            return True
        try:
            return time.time() - os.stat(self.dir / READERS).st_mtime < self.idle_after
        except OSError:
            return False

    def _source_rows(self) -> dict[str, int]:
        return {t: int(self.con.execute(f"SELECT coalesce(max(rowid) + 1, 0) FROM {t}").fetchall()[0][0])
                for t in TABLES}

    def refresh(self) -> str | None:
        """Bring one replica up to date; returns its name, or None when nothing was new or
        both replicas were held by readers."""
        with self._lock:
            order = sorted(NAMES, key=lambda n: self.state.get(n, {}).get("generation", -1))
            for name in order:
                try:
                    done = self._update(name)
                except (duckdb.IOException, duckdb.ResourceInUseException):  # a reader holds it: the other one
                    continue
                if done:
                    self._write_manifest()
                return name if done else None
            self.skipped += 1
            return None

    def _update(self, name: str) -> bool:
        path = str(self.dir / f"{name}.duckdb")
        con = self.con
        marks = self._marks.get(name)
        if marks is not None and marks == self._source_rows():
            return False
        # raises IOException while a reader holds it.  Small row groups (for a new replica): each
        # update's checkpoint re-compresses the last, partly filled row group of every table it
        # appended to, which at DuckDB's default (122,880 rows) grew to ~0.4 s per update
        # under load; at 16,384 it stays under ~0.1 s, and scans hardly notice.
        quoted = "'" + str(path).replace("'", "''") + "'"  # ATTACH takes no parameters: a quoted literal
        con.execute(f"ATTACH {quoted} AS klartext_replica (ROW_GROUP_SIZE {REPLICA_ROW_GROUP})")
        try:
            con.execute("BEGIN TRANSACTION")  # one snapshot of the log for the whole update
            try:
                hi = self._source_rows()
                if marks is None:
                    marks = self._existing_marks(hi)
                if marks is None:  # new, or not a copy of this log: start over
                    for t in (*TABLES, "_replica"):
                        con.execute(f"DROP TABLE IF EXISTS klartext_replica.{t}")
                    for t in TABLES:
                        con.execute(f"CREATE TABLE klartext_replica.{t} AS SELECT * FROM {t} WHERE false")
                    con.execute("CREATE TABLE klartext_replica._replica (tbl VARCHAR, next_rowid BIGINT)")
                    marks = dict.fromkeys(TABLES, 0)
                for t in TABLES:
                    if hi[t] > marks[t]:
                        con.execute(f"INSERT INTO klartext_replica.{t} SELECT * FROM {t} "
                                    f"WHERE rowid >= {marks[t]} AND rowid < {hi[t]}")
                con.execute("DELETE FROM klartext_replica._replica")
                con.execute("INSERT INTO klartext_replica._replica SELECT unnest(?::VARCHAR[]), unnest(?::BIGINT[])",
                            [list(hi), list(hi.values())])
                decisions = int(con.execute("SELECT count(*) FROM klartext_replica.decisions").fetchall()[0][0])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                self._marks.pop(name, None)  # re-read from the replica next time
                raise
            con.execute("CHECKPOINT klartext_replica")  # readers open it read-only: leave no WAL behind
        finally:
            con.execute("DETACH klartext_replica")
        self._marks[name] = hi
        self.generation += 1
        self.updates += 1
        self.state[name] = {"path": path, "generation": self.generation, "decisions": decisions,
                            "updated": datetime.now(UTC).isoformat()}
        return True

    def _existing_marks(self, hi: dict[str, int]) -> dict[str, int] | None:
        """What a replica file already holds, if it is an earlier copy of this log."""
        con = self.con
        has = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'klartext_replica'").fetchall()}
        if not set(TABLES) | {"_replica"} <= has:
            return None
        marks = dict(con.execute("SELECT tbl, next_rowid FROM klartext_replica._replica").fetchall())
        if set(marks) != set(TABLES) or any(marks[t] > hi[t] for t in TABLES):
            return None
        # the same log: the replica's newest chain link must be the log's link at that place
        same = con.execute(
            "SELECT count(*) = (SELECT count(*) FROM klartext_replica.chain) FROM klartext_replica.chain r "
            "JOIN chain c USING (seq) WHERE r.chain_hash = c.chain_hash AND r.seq = "
            "(SELECT max(seq) FROM klartext_replica.chain)").fetchall()[0][0]
        n_chain = con.execute("SELECT count(*) FROM klartext_replica.chain").fetchall()[0][0]
        return marks if (n_chain == 0 or same) else None

    def _write_manifest(self) -> None:
        body = {"source": self.source, "service_pid": os.getpid(), "replicas": self.state}
        tmp = self.dir / f"manifest.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(body, indent=2))
        os.replace(tmp, self.dir / "manifest.json")

    def status(self) -> dict:
        fresh = max(self.state.values(), key=lambda r: r["generation"], default=None)
        return {"replicas": len(self.state), "generation": self.generation, "updates": self.updates,
                "skipped_both_held": self.skipped, "idle_ticks": self.idle_ticks, "readers": self.wanted(),
                "newest": fresh, "error": self.error}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        _RUNNING.discard(self)
        try:
            (self.dir / "manifest.json").unlink()  # no service holds the log any more
        except OSError:
            pass


#: Replicators not closed yet: stopped at exit, so their thread is not inside DuckDB while
#: the interpreter shuts down (a daemon thread stopped there aborts the process).
_RUNNING: weakref.WeakSet[Replicator] = weakref.WeakSet()


@atexit.register
def _stop_running() -> None:
    for r in list(_RUNNING):
        r.close()


def wait_for_replica(path: str | Path, timeout_s: float = 30.0) -> ReplicaInfo:
    """The freshest replica, waiting up to ``timeout_s`` for the first one (tests, scripts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = replicas(path)
        if found:
            return found[0]
        time.sleep(0.1)
    raise LogError(f"No live replica of {str(path)!r} appeared within {timeout_s:g} s.",
                   "Check that `klartext serve` runs on this log (GET /health shows its replicas).")
