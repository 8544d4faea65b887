"""``klartext serve --workers N``: several processes on one port, a log file each, sealed into
shards when they stop; kill -9 of one worker loses no acknowledged decision."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from decision_log import shards
from decision_log.store import DecisionLog
from decisioning.errors import LogError
from tests.test_serve import _free_port

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())


def _get(port: int, path: str) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"GET {path}: {exc.code} {exc.read()[:500]!r}") from None


def _post(port: int, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            raise
        raise AssertionError(f"POST {path}: {exc.code} {exc.read()[:500]!r}") from None


def _start(db: Path, port: int, workers: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "klartext.cli", "serve", "--db", str(db), "--port", str(port),
                             "--workers", str(workers), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(300):
        try:
            _get(port, "/health")
            return proc
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(proc.stdout.read().decode(errors="replace")[-3000:])


def _worker_pids(port: int, n: int) -> dict[int, int]:
    """{worker number: pid}, asking /health on new connections until every worker answered."""
    seen: dict[int, int] = {}
    deadline = time.time() + 90  # (a worker starting up: imports, models, replicas)
    while time.time() < deadline:
        w = _get(port, "/health")["worker"]
        seen[w["k"]] = w["pid"]
        if len(seen) == n:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"only workers {sorted(seen)} answered")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    return out.decode(errors="replace")


def test_kill_9_of_one_worker_loses_no_acknowledged_decision_and_the_others_go_on(demo_copy):
    db = demo_copy
    with DecisionLog.open(db, read_only=True) as log:
        before = log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
    port = _free_port()
    proc = _start(db, port, 2)
    stop = threading.Event()
    try:
        pids = _worker_pids(port, 2)
        acked: list[tuple[str, float]] = []
        refused: list[int] = []

        def client(k: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    a = _post(port, "/decide", {**CUSTOMER, "customer_id": f"W{k}-{i}"})
                    acked.append((a["decision_id"], time.time()))
                except urllib.error.HTTPError as exc:
                    refused.append(exc.code)
                except AssertionError as exc:  # a 5xx, with its body
                    refused.append(str(exc))
                except OSError:  # the connection's worker was killed: not acknowledged, try again
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(8)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        killed_at = time.time()
        os.kill(pids[1], signal.SIGKILL)
        time.sleep(3.0)
        # the live view reads every worker's replica: decisions of both workers, while they run
        deadline = time.time() + 20
        while time.time() < deadline:
            with DecisionLog.open(db, read_only=True) as live:
                seen = live.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
                if seen > before + 50:
                    break
            time.sleep(0.5)
        assert seen > before + 50, seen
        with DecisionLog.open(db, read_only=True) as live:  # verify while it runs: no false alarm
            res = live.verify()
        assert res.ok and any("running service worker" in n for n in res.notes), (res.problem, res.notes)
        # another worker's decision: explained and its outcome taken by whichever worker answers
        did = acked[5][0]
        answered = 0
        deadline = time.time() + 20
        while answered < 4:  # whichever worker answers; another's decision is there with its next replica
            try:
                assert _get(port, f"/decisions/{did}")["decision"]["decision_id"] == did
                answered += 1
            except AssertionError as exc:
                assert "404" in str(exc) and time.time() < deadline, exc
                time.sleep(0.5)
        logged = [_post(port, "/outcome", {"decision_id": did, "outcome": "ignored"})["logged"]]
        deadline = time.time() + 30
        while True:  # until the outcome is in the live view (the worker that took it replicated it)
            with DecisionLog.open(db, read_only=True) as live:
                if live.con.execute("SELECT count(*) FROM outcomes WHERE decision_id = ?", [did]).fetchall()[0][0]:
                    break
            assert time.time() < deadline, "the outcome never reached the live view"
            time.sleep(0.5)
        for _ in range(6):  # whichever worker takes a repeat now (the decision's own too): it is not logged twice
            logged.append(_post(port, "/outcome", {"decision_id": did, "outcome": "ignored"})["logged"])
        assert logged == [1, 0, 0, 0, 0, 0, 0], logged
        stop.set()
        for t in threads:
            t.join()
        pids_after = _worker_pids(port, 2)
    finally:
        stop.set()  # (also when an assertion above failed: no client thread outlives the test)
        out = _stop(proc)
    assert pids_after[1] != pids[1] and pids_after[2] == pids[2], (pids, pids_after)  # restarted; the other kept on
    assert [t for _, t in acked if t > killed_at + 0.5], "no decision was acknowledged after the kill"
    assert not [c for c in refused if not isinstance(c, int)], refused
    assert "Worker 1 ended" in out and "Sealed" in out, out
    root = shards.root_of(str(db))
    assert shards.worker_files(root) == [], "worker files are sealed into shards and removed"
    found, total, ok, problem = _acknowledged(db, [d for d, _ in acked])
    with DecisionLog.open(db, read_only=True) as log:
        outcome = log.con.execute("SELECT count(*) FROM outcomes WHERE decision_id = ?", [did]).fetchall()[0][0]
    assert found == len(acked) > 100
    assert total[0] == total[1] == total[3] - total[2] + 1  # positions 1 … n, none twice, none missing
    assert outcome == 1
    assert ok, problem


def test_a_worker_file_changed_before_it_is_sealed_is_refused_by_name(demo_copy):
    db = str(demo_copy)
    port = _free_port()
    proc = _start(Path(db), port, 2)
    try:
        for i in range(30):
            _post(port, "/decide", {**CUSTOMER, "customer_id": f"T{i}"})
        os.killpg(proc.pid, signal.SIGKILL)  # supervisor and workers: the files stay unsealed
        proc.wait()
        time.sleep(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    files = shards.worker_files(shards.root_of(db))
    assert files
    target = next(f for f in files if duckdb.connect(str(f)).execute("SELECT count(*) FROM decisions").fetchall()[0][0])
    con = duckdb.connect(str(target))
    con.execute("UPDATE decisions SET channel = 'sms' WHERE seq = 2")
    con.close()
    with DecisionLog.open(db) as log, pytest.raises(LogError, match=f"position 2.*{target.name}"):
        log.seal_workers()
    assert target.exists()  # kept for investigation, nothing of it sealed


def test_contact_limits_count_what_the_other_workers_logged(demo_copy):
    """A customer's requests land on any worker; each counts the contacts all of them made."""
    db = demo_copy
    port = _free_port()
    proc = _start(db, port, 2)
    ids = []
    try:
        _worker_pids(port, 2)
        # the kernel hands each connection to either worker, but may favour one for a while:
        # go on until both have decided for the customer (seen in their live replicas)
        workers_seen: set[str] = set()
        while len(ids) < 8 or len(workers_seen) < 2:
            assert len(ids) < 40, "one worker took every request"
            ids.append(_post(port, "/decide", {**CUSTOMER, "channel": "email"})["decision_id"])
            time.sleep(2.5)  # the worker's replica, then the other worker's copy of it
            with DecisionLog.open(db, read_only=True) as live:
                for alias in shards.attached_workers(live.con):
                    if shards.worker_cursor(live.con, alias).execute(
                            "SELECT count(*) FROM decisions WHERE list_contains(?, decision_id)", [ids]
                    ).fetchall()[0][0]:
                        workers_seen.add(Path(live.con.execute(  # (…/worker-K.duckdb.live/a.duckdb)
                            "SELECT path FROM duckdb_databases() WHERE database_name = ?", [alias]
                        ).fetchall()[0][0]).parent.name)
    finally:
        _stop(proc)
    with DecisionLog.open(db, read_only=True) as log:
        rows = log.con.execute("SELECT d.decision_id, d.customer, d.inputs, d.chosen_action, s.shard FROM decisions d "
                               "ASOF JOIN shard_starts s ON d.seq >= s.seq WHERE list_contains(?, decision_id)", [ids]
                               ).df().set_index("decision_id").loc[ids]
        inputs = [json.loads(t) for t in log.open_inputs(list(rows.index), list(rows.customer), list(rows.inputs))]
    assert rows["shard"].nunique() == 2, "both workers decided for the customer"
    before = 0
    for (_, r), got in zip(rows.iterrows(), inputs):
        assert got["contacts"].get("email", 0) == before, (before, got["contacts"])
        before += bool(pd.notna(r.chosen_action))
    assert before >= 2


def test_what_a_killed_service_left_is_named_by_verify_and_sealed_by_archive(demo_copy):
    from click.testing import CliRunner

    from klartext.cli import main

    db = str(demo_copy)
    port = _free_port()
    proc = _start(Path(db), port, 2)
    try:
        acked = [_post(port, "/decide", {**CUSTOMER, "customer_id": f"K{i}"})["decision_id"] for i in range(12)]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # supervisor and workers at once: nothing sealed
        proc.wait()
    time.sleep(1)
    with DecisionLog.open(db, read_only=True) as log:
        res = log.verify()
    assert res.ok and any("worker file(s) of a service that stopped" in n for n in res.notes), res.notes
    out = CliRunner().invoke(main, ["archive", "--db", db, "--before", "2000-01-01"], catch_exceptions=False)
    assert out.exit_code == 0 and "decisions of a stopped service's worker sealed" in out.output, out.output
    assert shards.worker_files(shards.root_of(db)) == []
    with DecisionLog.open(db, read_only=True) as log:
        log.con.register("acked", pd.DataFrame({"decision_id": acked}))
        assert log.con.execute("SELECT count(*) FROM acked JOIN decisions USING (decision_id)").fetchall()[0][0] == 12
        assert log.verify().ok


def test_the_dashboard_follows_the_decisions_of_running_workers(demo_copy, monkeypatch):
    from streamlit.testing.v1 import AppTest

    db = demo_copy
    port = _free_port()
    proc = _start(db, port, 2)
    monkeypatch.setenv("KLARTEXT_DB", str(db))

    def shown() -> int:
        # through app.py, as the dashboard runs (its Overview): each run lets go of the replicas it
        # attached.  A page run on its own holds its lease for good, and two such runs held both
        # replicas of a worker, so its replicator could refresh neither (30 s stuck at 2,028 of 2,030)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return int(at.metric[0].value.replace(",", "").replace(".", ""))

    try:
        _worker_pids(port, 2)
        first = shown()
        for i in range(30):
            _post(port, "/decide", {**CUSTOMER, "customer_id": f"D{i}"})
        deadline, now = time.time() + 30, first
        while now != first + 30 and time.time() < deadline:
            time.sleep(1)
            now = shown()
    finally:
        _stop(proc)
    assert now == first + 30, (first, now)


def test_a_changed_worker_file_is_refused_also_where_its_positions_need_not_move(demo_log, tmp_path):
    """A new log (no shards, nothing in its file): worker 1's decisions keep positions 1, 2, …
    when sealed, and its chain is still checked first."""
    head, f, _ = _new_log_with_worker_file(demo_log, tmp_path, issued=True)
    con = duckdb.connect(str(f))
    con.execute("UPDATE decisions SET channel = 'sms' WHERE seq = 2")
    con.close()
    with DecisionLog.open(head) as log, pytest.raises(LogError, match="position 2.*worker-1.duckdb"):
        log.seal_workers()
    assert f.exists()


def _new_log_with_worker_file(demo_log, tmp_path, *, issued: bool, other_key: bool = False):
    """A new log and a worker file with three decisions in it: its id issued by the log (as the
    supervisor does) or made up, written with the log's pseudonym key or another."""
    from decisioning.engine import Engine
    from decisioning.inputs import Requests

    with DecisionLog.open(demo_log, read_only=True) as src:
        strategy = src.load_strategy(src.latest_strategy_version())
        models = src.latest_models_for(strategy)
    head = str(tmp_path / "new.duckdb")
    with DecisionLog.open(head) as log:
        log.register_strategy(strategy)
        log.register_models(models)
        key = os.urandom(32) if other_key else log._key
        fid = log.issue_worker_file(1) if issued else os.urandom(16).hex()
    w = DecisionLog.worker(head, 1, key, None, fid)
    w.append(Engine(strategy, models).decide(Requests.from_dicts(strategy, [CUSTOMER] * 3)), strategy)
    w.close()
    return head, shards.worker_path(shards.root_of(head), 1), fid


def test_a_worker_file_no_service_of_the_log_started_is_not_sealed(demo_log, tmp_path):
    """A crafted worker-1.duckdb placed in the log's folder: its chain verifies against itself,
    but its id was never issued by the log, so its decisions are not sealed into the log."""
    head, f, _ = _new_log_with_worker_file(demo_log, tmp_path, issued=False)
    with DecisionLog.open(head) as log:
        with pytest.raises(LogError, match="no service of this log started it"):
            log.seal_workers()
        assert log.manifest.tail[0] == 0 and not log.manifest.shards
    assert f.exists()  # kept for examination
    with DecisionLog.open(head, read_only=True) as log:
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 0


def test_a_worker_file_under_another_pseudonym_key_is_not_sealed(demo_log, tmp_path):
    head, f, _ = _new_log_with_worker_file(demo_log, tmp_path, issued=True, other_key=True)
    with DecisionLog.open(head) as log, pytest.raises(LogError, match="another pseudonym key"):
        log.seal_workers()
    assert f.exists()


def test_a_worker_does_not_take_over_a_file_with_another_id(demo_log, tmp_path):
    head, f, _ = _new_log_with_worker_file(demo_log, tmp_path, issued=True)
    with DecisionLog.open(head) as log:
        other, key = log.issue_worker_file(1), log._key
    with pytest.raises(LogError, match="not the file this service started worker 1 with"):
        DecisionLog.worker(head, 1, key, None, other)
    with DecisionLog.open(head) as log:  # the issued file is sealed as it is
        (shard,) = log.seal_workers()
        assert shard.decisions == 3
    assert not f.exists()


def test_a_worker_counts_the_contacts_and_rejections_logged_before_it_started(demo_copy):
    """A worker reads a customer's history from its own file, its peers' copies and the
    shards.  The decisions and rejections in the head file (the demo's, a single-process
    service's) were not among them, nor the rejections sealed in an earlier run's worker
    shards: a contact limit or a suppression rule could be broken by the first requests after
    `serve --workers` started.  The supervisor now seals the head's decisions into a shard
    before the workers start, each worker copies the head's rejections when it starts, and
    every writer reads the shards' rejections."""
    from datetime import UTC, datetime

    from decision_log import queries
    from decisioning.inputs import Requests
    from klartext import workers
    from klartext.serve import Service, Worker

    db = str(demo_copy)
    now = datetime.now(UTC)
    with DecisionLog.open(db, read_only=True) as log:
        strategy = log.load_strategy(log.latest_strategy_version())
        limited = [lim.channel for lim in strategy.contact_limits]
        cust = log.con.execute(
            "SELECT d.customer FROM decisions d JOIN outcomes o USING (decision_id) WHERE o.outcome = 'rejected' "
            "AND o.ts >= now() - INTERVAL 20 DAY AND d.ts >= now() - INTERVAL 5 DAY AND d.chosen_action IS NOT NULL "
            "AND list_contains(?, d.channel) GROUP BY d.customer ORDER BY count(*) DESC, d.customer LIMIT 1",
            [limited]).fetchall()[0][0]
        want = queries.contact_history(log.con.cursor(), cust, strategy, now=now)
        did, aid = log.con.execute("SELECT decision_id, chosen_action FROM decisions WHERE customer = ? AND "
                                   "chosen_action IS NOT NULL ORDER BY ts DESC LIMIT 1", [cust]).fetchall()[0]
    assert want[0] and want[1], want  # contacts and rejections in the head file

    def seen_by(log: DecisionLog) -> tuple:
        return queries.contact_history(log.con.cursor(), cust, strategy, now=now,
                                       decisions=log.history_source(strategy, now), outcomes=log.history_outcomes())

    head, key, keys, ids = workers.prepare(db, None, lambda _m: None, 1)
    svc = Service(head, worker=Worker(1, key, keys, ids[1]), replicate=False, follow_s=0)
    try:
        assert seen_by(svc.log) == want
        # a rejection this worker takes, of the customer's newest decision
        svc.log.append_outcomes(pd.DataFrame({"decision_id": [did], "action_id": [aid], "outcome": ["rejected"],
                                              "revenue": [0.0], "margin": [0.0], "churned": [None],
                                              "ts_us": [int(now.timestamp() * 1e6)]}), elsewhere=True)
    finally:
        svc.close()
    # the worker made no decision: its file used to be dropped with the outcome it had acknowledged
    with DecisionLog.open(db) as log:
        assert log.seal_workers() == []
        assert log.con.execute("SELECT count(*) FROM outcomes WHERE decision_id = ? AND action_id = ? AND outcome = "
                               "'rejected' AND ts = ?", [did, aid, now]).fetchall()[0][0] == 1
        contacts, rejections = seen_by(log)  # a single-process service on the log afterwards
    assert not shards.worker_files(shards.root_of(db))
    assert contacts == want[0]
    assert rejections[aid]["count"] == want[1].get(aid, {}).get("count", 0) + 1, (rejections, want[1])
    # a worker that decides and takes another rejection: sealed into a shard with it; every writer
    # reads the shards' rejections
    head, key, keys, ids = workers.prepare(db, None, lambda _m: None, 1)
    svc = Service(head, worker=Worker(1, key, keys, ids[1]), replicate=False, follow_s=0)
    try:
        svc.log.append(svc.engine.decide(Requests.from_dicts(strategy, [CUSTOMER])), strategy)
        svc.log.append_outcomes(pd.DataFrame({"decision_id": [did], "action_id": [aid], "outcome": ["rejected"],
                                              "revenue": [0.0], "margin": [0.0], "churned": [None],
                                              "ts_us": [int(now.timestamp() * 1e6) + 1]}), elsewhere=True)
    finally:
        svc.close()
    with DecisionLog.open(db) as log:
        (shard,) = log.seal_workers()
        assert shard.decisions == 1 and shard.outcomes == 1
        _, rejections = seen_by(log)
    assert rejections[aid]["count"] == want[1].get(aid, {}).get("count", 0) + 2, (rejections, want[1])
    assert DecisionLog.open(db, read_only=True).verify().ok


def _acknowledged(db: Path, acked: list[str]) -> tuple[int, tuple, bool, str | None]:
    """How many of ``acked`` the log holds; its positions (count, distinct, min, max); verify."""
    with DecisionLog.open(db, read_only=True) as log:
        log.con.register("acked", pd.DataFrame({"decision_id": acked}))
        found = log.con.execute("SELECT count(*) FROM acked JOIN decisions USING (decision_id)").fetchall()[0][0]
        total = log.con.execute("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM decisions").fetchall()[0]
        res = log.verify()
    return found, total, res.ok, res.problem


def test_worker_files_are_rotated_into_shards_while_the_service_runs_and_lose_nothing(demo_copy):
    """A long-running service seals each worker's file into a shard once it holds
    ``--rotate-after`` decisions, one worker at a time, while the others answer; every
    acknowledged decision is in the log, on one unbroken chain."""
    db = demo_copy
    root = shards.root_of(str(db))
    port = _free_port()
    proc = _start(db, port, 2, "--rotate-after", "40")
    stop = threading.Event()
    acked: list[str] = []
    refused: list = []
    try:
        _worker_pids(port, 2)
        before = len(shards.Manifest.load(root).shards)  # (with the one the service started with)

        def client(k: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    acked.append(_post(port, "/decide", {**CUSTOMER, "customer_id": f"R{k}-{i}"})["decision_id"])
                except urllib.error.HTTPError as exc:
                    refused.append(exc.code)
                except AssertionError as exc:  # a 5xx, with its body
                    refused.append(str(exc))
                except OSError:  # the connection's worker stopped for its rotation: not acknowledged, again
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(6)]
        for t in threads:
            t.start()
        deadline = time.time() + 90
        while len(shards.Manifest.load(root).shards) < before + 3 and time.time() < deadline:
            time.sleep(0.5)
        rotated_while_running = len(shards.Manifest.load(root).shards) - before
        n_then = len(acked)
        time.sleep(2.0)
        assert len(acked) > n_then, "no decision was acknowledged after the rotations"
        stop.set()
        for t in threads:
            t.join()
        health = _get(port, "/health")
    finally:
        stop.set()
        out = _stop(proc)
    assert rotated_while_running >= 3, (rotated_while_running, out[-3000:])
    assert out.count("it goes on with a new file") >= 3, out[-3000:]
    assert not refused, refused[:5]
    assert health["other_workers"]["sealed_files_swapped"] >= 1, health
    found, total, ok, problem = _acknowledged(db, acked)
    assert found == len(acked) > 100
    assert total[0] == total[1] == total[3] - total[2] + 1  # positions 1 … n, none twice, none missing
    assert ok, problem


def test_a_rotation_neither_loses_nor_doubles_a_contact_the_other_worker_counts(demo_copy):
    """A customer's contacts made on a worker whose file was since sealed count once on every
    worker: from the other worker's copy before the rotation, from the shard after it."""
    db = demo_copy
    root = shards.root_of(str(db))
    port = _free_port()
    proc = _start(db, port, 2, "--rotate-after", "2")
    ids = []
    try:
        _worker_pids(port, 2)
        before = len(shards.Manifest.load(root).shards)
        while len(ids) < 10:
            ids.append(_post(port, "/decide", {**CUSTOMER, "channel": "email"})["decision_id"])
            # the worker's replica, then the other worker's copy of it; where the worker's file was
            # rotated right after the decision, its stop, the seal and the other's next look at the files
            time.sleep(4.0)
        rotated = len(shards.Manifest.load(root).shards) - before
    finally:
        out = _stop(proc)
    assert rotated >= 2, (rotated, out[-3000:])
    with DecisionLog.open(db, read_only=True) as log:
        rows = log.con.execute("SELECT d.decision_id, d.customer, d.inputs, d.chosen_action, s.shard FROM decisions d "
                               "ASOF JOIN shard_starts s ON d.seq >= s.seq WHERE list_contains(?, decision_id)", [ids]
                               ).df().set_index("decision_id").loc[ids]
        inputs = [json.loads(t) for t in log.open_inputs(list(rows.index), list(rows.customer), list(rows.inputs))]
    assert rows["shard"].nunique() >= 3, "the decisions went into several shards"
    before_contacts = 0
    for (_, r), got in zip(rows.iterrows(), inputs):
        assert got["contacts"].get("email", 0) == before_contacts, (before_contacts, got["contacts"])
        before_contacts += bool(pd.notna(r.chosen_action))
    assert before_contacts >= 2


def test_a_rotation_prepares_the_shard_before_it_holds_the_log_and_seals_the_same(demo_log, tmp_path):
    """The slow part of a rotation (the chain checked, positions moved, Parquet written) runs
    before the head is held; under the hold the prepared shard is only linked — the same shard,
    link and head as sealing the file there.  Where the log moved meanwhile (a shard sealed in
    between) the prepared one is not used: the file is sealed after the new tail."""
    import shutil

    head, f, _ = _new_log_with_worker_file(demo_log, tmp_path, issued=True)
    twin = tmp_path / "twin"
    shutil.copytree(tmp_path, twin, ignore=shutil.ignore_patterns("twin"))
    with DecisionLog.open(str(twin / "new.duckdb")) as log:  # sealed the way a stop does
        (plain,) = log.seal_workers()
    prepared = DecisionLog.prepare_worker_seal(head, f)
    assert prepared is not None and (shards.root_of(head) / f".prepared-{prepared.name}").is_dir()
    calls = []
    real = shards.write
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shards, "write", lambda *a, **k: calls.append(1) or real(*a, **k))
        with DecisionLog.open(head) as log:
            (linked,) = log.seal_workers(only=[f], prepared=prepared)
    assert not calls, "the prepared shard was written again under the hold"
    assert (linked.name, linked.first_seq, linked.last_seq, linked.head, linked.link) == \
        (plain.name, plain.first_seq, plain.last_seq, plain.head, plain.link)
    assert not f.exists() and not list(shards.root_of(head).glob(".prepared-*"))
    with DecisionLog.open(head, read_only=True) as log:
        assert log.verify().ok

    # a prepared shard the log moved past is not used
    (tmp_path / "b").mkdir()
    head2, f2, _ = _new_log_with_worker_file(demo_log, tmp_path / "b", issued=True)
    stale = DecisionLog.prepare_worker_seal(head2, f2)
    with DecisionLog.open(head2) as log:  # meanwhile: decisions in the log's own file, archived into a shard first
        from decisioning.engine import Engine
        from decisioning.inputs import Requests

        s = log.load_strategy(log.latest_strategy_version())
        log.append(Engine(s, log.latest_models_for(s)).decide(Requests.from_dicts(s, [CUSTOMER] * 2)), s)
        new = log.seal_workers(only=[f2], prepared=stale)
    assert [(x.first_seq, x.last_seq) for x in new] == [(3, 5)]  # after the 2 of the file's own shard
    with DecisionLog.open(head2, read_only=True) as log:
        res = log.verify()
        assert res.ok and res.n_decisions == 5, res.problem
