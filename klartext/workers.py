"""``klartext serve --workers N``: several service processes on one port, each with a log
file of its own.

One DuckDB file has one writer, and one Python process decides on one core at a time, so a
single service tops out at what one core does.  With ``--workers N`` a supervisor:

1. opens the log (its head file) once, finishes what an earlier run left — worker files of a
   run that was stopped or killed are sealed into shards (:meth:`DecisionLog.seal_workers`)
   — and registers the strategy and models that decide, then lets go of the file;
2. binds the port and starts N worker processes (``spawn``: nothing of DuckDB is forked)
   that share the listening socket; the kernel hands each new connection to one of them;
3. each worker is a complete service (:class:`klartext.serve.Service`) that logs into its
   own file ``<log>.shards/.workers/worker-K.duckdb`` with a chain of its own — no worker
   waits for another's lock — answers a request only after its decision is committed there,
   keeps live replicas of its file, and follows the head's lifecycle and objections;
4. restarts a worker that dies (after ``kill -9`` DuckDB replays the worker's WAL when the
   new process opens the file: every acknowledged decision is there);
5. on SIGTERM or Ctrl-C stops the workers (each finishes what it acknowledged) and seals
   their files into shards;
6. while they run, **rotates** each worker's file once it holds ``rotate_after`` decisions or
   is ``rotate_every_s`` old (:meth:`Supervisor.rotate`): one worker at a time is stopped, its
   file sealed into a shard under a short hold of the head file, and started again on a new
   file, while the others go on answering on the port.  So a service that runs for weeks
   keeps its decisions in shards — with the dashboard's summaries, readable without Klartext
   — and not in ever larger worker files.  The other workers swap their copy of the stopped
   worker's decisions for the new shard in one step (:mod:`decision_log.peers`): a contact
   limit counts each decision once, before, during and after the rotation.

Readers see the whole log while it runs: a read-only open of a log with workers attaches each
worker's freshest replica (:func:`decision_log.shards.reader`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from decision_log import lifecycle, live, shards
from decision_log.store import DecisionLog
from decisioning.strategy import load_strategy

RESTART_PAUSE_S = 0.5  #: a worker that died is started again after this long
#: Defaults of ``klartext serve --workers``: a worker's file is sealed into a shard once it
#: holds this many decisions (the readers compute what a worker file holds from its rows, the
#: shards from the summaries) or is this old (a day's decisions in a shard of their own)
ROTATE_AFTER = 1_000_000
ROTATE_EVERY_S = 24 * 3600.0
ROTATE_CHECK_S = 1.0  #: how often the supervisor looks at the workers' files (their replicas' manifests)
HEAD_WAIT_S = 30.0  #: how long a rotation waits for readers of the head file to let go of it


def prepare(db: str, strategy_path: str | None, say: Callable[[str], None], workers: int
            ) -> tuple[str, bytes, str | None, dict[int, str]]:
    """Step 1 of the module docstring; returns (head file, pseudonym key, customers' key file,
    the id issued for each worker's file)."""
    head = shards.head_path(db)
    strategy = load_strategy(strategy_path) if strategy_path else None
    with DecisionLog.open(head, create=False, wait_s=10) as log:
        for s in log.seal_workers(say):
            say(f"Shard {s.name}: {s.decisions:,} decisions of an earlier run's worker sealed")
        # the file's own decisions (a single-process service's, a batch run's) into a shard: the
        # workers read the shards for each customer's contacts, never the head file
        if log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]:
            s = log.archive(datetime(9999, 1, 1, tzinfo=UTC))
            say(f"Shard {s.name}: the log's {s.decisions:,} decisions sealed, so that every worker counts their "
                "contacts")
        d = lifecycle.arrangement(log, strategy, ready=False)
        for e in d.engines:
            log.register_strategy(e.strategy)
            log.register_models(e.models)
        keys = str(log.subject_keys.path) if log.seals_inputs and log.subject_keys is not None else None
        ids = {k: log.issue_worker_file(k) for k in range(1, workers + 1)}
        return head, log._key, keys, ids


def _worker(head: str, k: int, key: bytes, keys: str | None, file_id: str, strategy_path: str | None,
            sock: socket.socket, parent: int, opts: dict, ready=None) -> None:
    """One worker process: a service on the shared socket, logging into its own file; sets
    ``ready`` once it answers."""
    import uvicorn

    from klartext.serve import Worker, create_app

    def orphaned() -> None:  # the supervisor is gone (killed): stop, so the files can be sealed
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, daemon=True).start()
    app = create_app(head, strategy_path, worker=Worker(k, key, keys, file_id), freeze_gc=True, **opts)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started and ready is not None:
            ready.set()

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


def _terminate(procs: list[mp.process.BaseProcess]) -> None:
    """Stop worker processes: SIGTERM (each answers what it took on and loads its journal),
    then a minute for them to end before they are killed."""
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
            p.join()


class Supervisor:
    """Runs N workers on one socket (steps 2–5 of the module docstring)."""

    def __init__(self, db: str, strategy_path: str | None, host: str, port: int, workers: int,
                 say: Callable[[str], None] = print, rotate_after: int | None = ROTATE_AFTER,
                 rotate_every_s: float | None = ROTATE_EVERY_S, rotate_check_s: float = ROTATE_CHECK_S,
                 **opts) -> None:
        self.say = say
        self.rotate_after, self.rotate_every_s, self.rotate_check_s = rotate_after, rotate_every_s, rotate_check_s
        self.rotations = 0
        self.started: dict[int, float] = {}  #: worker → when its current file was issued (monotonic)
        self.ready: dict[int, object] = {}  #: worker → an event its process sets once it answers
        self.head, self.key, self.keys, self.file_ids = prepare(db, strategy_path, say, workers)
        self.strategy_path, self.opts, self.n = strategy_path, opts, workers
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(2048)
        self.sock.set_inheritable(True)
        self.port = self.sock.getsockname()[1]
        self.ctx = mp.get_context("spawn")
        self.procs: dict[int, mp.process.BaseProcess] = {}
        self.restarts = 0
        self._stop = threading.Event()

    def _start(self, k: int) -> None:
        self.ready[k] = self.ctx.Event()
        p = self.ctx.Process(target=_worker, name=f"klartext-worker-{k}", daemon=False,
                             args=(self.head, k, self.key, self.keys, self.file_ids[k], self.strategy_path, self.sock, os.getpid(),
                                   self.opts, self.ready[k]))
        p.start()
        self.procs[k] = p
        self.started.setdefault(k, time.monotonic())

    def run(self) -> None:
        """Start the workers, keep them running until SIGTERM/SIGINT, then stop and seal."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        for k in range(1, self.n + 1):
            self._start(k)
        self.say(f"{self.n} workers on port {self.port}; each logs into {shards.root_of(self.head) / shards.WORKERS}"
                 "/worker-K.duckdb until it stops (Ctrl-C stops them and seals their decisions into shards).")
        checked = time.monotonic()
        while not self._stop.wait(0.2):
            for k, p in list(self.procs.items()):
                if not p.is_alive():
                    self.say(f"Worker {k} ended (exit code {p.exitcode}); starting it again.")
                    self.restarts += 1
                    time.sleep(RESTART_PAUSE_S)
                    self._start(k)
            if time.monotonic() - checked >= self.rotate_check_s:
                checked = time.monotonic()
                k = self.due()
                if k is not None and not self._stop.is_set():
                    self.rotate(k)
        self.stop()

    def due(self) -> int | None:
        """The worker whose file is to be sealed now (the fullest, then the oldest), if any: it
        holds ``rotate_after`` decisions (as its freshest live replica counts them) or was
        issued ``rotate_every_s`` ago.  None while a worker is not answering yet (one that was
        just started again): the others are not stopped then."""
        if not all(e.is_set() for e in self.ready.values()):
            return None
        now, found = time.monotonic(), []
        root = shards.root_of(self.head)
        for k in self.procs:
            m = live.manifest(shards.worker_path(root, k)) or {}  # (read without counting as a reader)
            n = max((int(r.get("decisions", 0)) for r in m.get("replicas", {}).values()), default=0)
            age = now - self.started.get(k, now)
            if (self.rotate_after is not None and n >= self.rotate_after) or \
                    (self.rotate_every_s is not None and age >= self.rotate_every_s and n > 0):
                found.append((-n, -age, k))
        return min(found)[2] if found else None

    def rotate(self, k: int) -> list[shards.Shard]:
        """Seal worker ``k``'s file into a shard while the other workers go on: stop it (it
        answers what it took on and loads its journal), check, renumber and write its file as
        a Parquet shard (:meth:`DecisionLog.prepare_worker_seal`), link that shard under a hold
        of the head file (readers wait for it, up to :data:`HEAD_WAIT_S`), and start the worker
        again on a new file.  Where the head cannot be had, the worker starts again on its old file and the
        rotation is tried at the next check.  Returns the new shard (empty: none)."""
        _terminate([self.procs[k]])
        f = shards.worker_path(shards.root_of(self.head), k)
        sealed: list[shards.Shard] = []
        t, new_id, held = time.monotonic(), None, 0.0
        try:
            # checked, renumbered and written as Parquet before the head is held: under the hold
            # the shard is only linked, and the dashboard's summaries count it
            ready = DecisionLog.prepare_worker_seal(self.head, f)
            t_held = time.monotonic()
            with DecisionLog.open(self.head, create=False, wait_s=HEAD_WAIT_S) as log:
                new_id = log.issue_worker_file(k)  # (first: a sealed file's id is never used again)
                sealed = log.seal_workers(only=[f], prepared=ready)
            held = time.monotonic() - t_held
        except Exception as exc:  # noqa: BLE001 - the service goes on; the next check tries again
            self.say(f"Worker {k}'s file was not sealed ({type(exc).__name__}: {exc}); it goes on with it.")
        finally:
            if new_id is not None and not f.exists():  # sealed, or empty and removed: a new file
                self.file_ids[k] = new_id
                self.started[k] = time.monotonic()
            self._start(k)
        if sealed:
            self.rotations += 1
            self.say(f"Worker {k}: {sealed[0].decisions:,} decisions sealed into shard {sealed[0].name} in "
                     f"{time.monotonic() - t:.1f} s (the log's file held {held:.1f} s of it); it goes on with a "
                     "new file.")
        return sealed

    def stop(self) -> list[shards.Shard]:
        """Stop every worker (each finishes and logs what it took on), then seal their files."""
        _terminate(list(self.procs.values()))
        self.sock.close()
        with DecisionLog.open(self.head, create=False, wait_s=30) as log:
            sealed = log.seal_workers(self.say)
        if sealed:
            n = sum(s.decisions for s in sealed)
            self.say(f"Sealed {n:,} decisions of {len(sealed)} worker file(s) into shards "
                     f"{sealed[0].name}–{sealed[-1].name} of {Path(self.head).name}.")
        return sealed
