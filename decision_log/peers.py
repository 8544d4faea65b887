"""What the other service workers logged, for a worker's contact limits.

With ``klartext serve --workers N`` each worker logs into a file of its own, and the kernel
hands a customer's next request to any worker.  A contact limit ("at most 2 e-mails a
week") counts the customer's contacts in the whole log, so each worker keeps a copy of the
other workers' decisions (the columns contact history reads) and rejected outcomes, in an
in-memory database attached to its own connection as ``peers``.  A thread brings it up to
date about once a second from each other worker's freshest live replica, incrementally (by
position: the files only grow); a worker's decisions reach the others within about two
seconds (its replica's interval plus this one's).  Rows older than the strategy's longest
window are dropped as they age.

When the supervisor rotates a worker's file (:meth:`klartext.workers.Supervisor.rotate`) its
decisions move into a shard: the file is gone, or another file with a new id stands in its
place.  Every copied row carries the id of the file it came from; once a file is seen gone
or replaced, the shard manifest is read again (the seal publishes the shard before it removes
the file, so the manifest read after holds it) and, in one step under the log's history lock,
the worker's contact history reads the new manifest and the copies of that file's rows are
deleted: each decision is counted once, in the shard.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from decision_log import live, shards

if TYPE_CHECKING:
    from decision_log.store import DecisionLog

COLUMNS = "decision_id, ts, customer, channel, chosen_action"
FILE = "k_file"  #: the column of a copied row that names the id of the worker file it came from


class Peers:
    """The other workers' recent contacts beside a worker's ``log`` (see the module docstring)."""

    def __init__(self, log: DecisionLog, window_days: float, interval_s: float = 1.0) -> None:
        con = log.con
        self.con, self.own, self.window = con, Path(log.path).resolve(), timedelta(days=window_days)
        self.log = log  #: the worker's log: its shard manifest is swapped when a peer's file was sealed
        con.execute("ATTACH ':memory:' AS peers")
        con.execute(f"CREATE TABLE peers.decisions AS SELECT {COLUMNS}, ''::VARCHAR AS {FILE} FROM decisions LIMIT 0")
        con.execute(f"CREATE TABLE peers.outcomes AS SELECT *, ''::VARCHAR AS {FILE} FROM outcomes LIMIT 0")
        self.seen: dict[str, tuple[str, int, int]] = {}  #: peer file -> (its id, last seq copied, outcomes copied)
        self.sealed = 0  #: peer files whose copies were swapped for their shard
        self.refreshed: float | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        try:  # before the first request: a worker started again after a rotation counts the others at once
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - as in the thread: /health says why
            self.error = f"{type(exc).__name__}: {exc}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="klartext-peers", daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
                self.error = None
            except Exception as exc:  # noqa: BLE001 - keep the last copy; /health says why
                self.error = f"{type(exc).__name__}: {exc}"

    def refresh(self) -> int:
        """Copy what the other workers logged since the last refresh; returns the new decisions."""
        with self._lock:
            new = 0
            cur = self.con.cursor()
            cutoff = datetime.now(UTC) - self.window
            files = shards.worker_files(self.own.parent.parent)
            present = {str(f) for f in files}
            # files gone since the last look (sealed, or removed empty): their ids are retired
            retired = {self.seen.pop(name)[0] for name in list(self.seen) if name not in present}
            for f in files:
                if f.resolve() == self.own:
                    continue
                found = live.open_replica(f, wait_s=0.0)  # (the freshest, else the other one)
                if found is None:
                    continue
                try:
                    new += self._copy(cur, str(f), found[0], cutoff, retired)
                finally:
                    found[0].close()
            if retired:
                self._swap(cur, retired)
            cur.execute("DELETE FROM peers.decisions WHERE ts < ?", [cutoff])
            cur.execute("DELETE FROM peers.outcomes WHERE ts < ?", [cutoff])
            self.refreshed = datetime.now(UTC).timestamp()
            return new

    def _swap(self, cur: duckdb.DuckDBPyConnection, retired: set[str]) -> None:
        """The files ``retired`` were sealed: read the manifest that holds their shards, then
        swap it in and drop their copies in one step (see the module docstring)."""
        manifest = shards.Manifest.load(self.own.parent.parent)
        with self.log.history_lock:
            self.log.history_shards = manifest
            gone = list(retired)
            cur.execute("BEGIN")
            try:
                cur.execute(f"DELETE FROM peers.decisions WHERE list_contains(?, {FILE})", [gone])
                cur.execute(f"DELETE FROM peers.outcomes WHERE list_contains(?, {FILE})", [gone])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        self.sealed += len(retired)

    def _copy(self, cur: duckdb.DuckDBPyConnection, name: str, src: duckdb.DuckDBPyConnection, cutoff: datetime,
              retired: set[str]) -> int:
        fid = src.execute("SELECT value FROM meta WHERE key = 'worker_file_id'").fetchall()
        fid = fid[0][0] if fid else ""
        known_id, last_seq, n_out = self.seen.get(name, (fid, 0, 0))
        if known_id != fid:  # a new file at that place (the old one was sealed): it starts again
            retired.add(known_id)
            last_seq, n_out = 0, 0
        dec = src.sql(f"SELECT {COLUMNS}, seq FROM decisions WHERE seq > ? AND ts >= ? ORDER BY seq",
                      params=[last_seq, cutoff]).to_arrow_table()
        top = src.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchall()[0][0]
        out = src.sql("SELECT * FROM outcomes ORDER BY rowid OFFSET ?", params=[n_out]).to_arrow_table()
        cur.execute("BEGIN")
        try:
            cur.register("_k_new", dec.drop_columns(["seq"]))
            cur.execute("INSERT INTO peers.decisions SELECT *, ? FROM _k_new", [fid])
            cur.unregister("_k_new")
            cur.register("_k_out", out)
            cur.execute("INSERT INTO peers.outcomes SELECT *, ? FROM _k_out WHERE outcome = 'rejected'", [fid])
            cur.unregister("_k_out")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self.seen[name] = (fid, max(int(top), last_seq), n_out + out.num_rows)
        return dec.num_rows

    def add_outcomes(self, rows) -> None:
        """Rejections logged outside the workers' files (the head file's, made before this
        service started), read once when the worker starts: an Arrow table of outcome rows."""
        with self._lock:
            cur = self.con.cursor()
            cur.register("_k_head", rows)
            try:
                cur.execute(f"INSERT INTO peers.outcomes BY NAME SELECT *, '' AS {FILE} FROM _k_head "
                            "WHERE outcome = 'rejected'")
            finally:
                cur.unregister("_k_head")

    def status(self) -> dict:
        return {"peers": len(self.seen), "refreshed": self.refreshed, "error": self.error,
                "sealed_files_swapped": self.sealed}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
