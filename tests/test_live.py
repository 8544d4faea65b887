"""Reading a log that `klartext serve` holds: rotating replicas, the dashboard beside the service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest
from test_serve import CUSTOMER, _free_port, _start

from decision_log import live
from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.inputs import Requests

ROOT = Path(__file__).resolve().parent.parent


def _decide(log: DecisionLog, n: int, seed: int) -> list[str]:
    s = log.load_strategy(log.latest_strategy_version())
    engine = Engine(s, log.latest_models_for(s))
    items = [{**CUSTOMER, "customer_id": f"live-{seed}-{i}"} for i in range(n)]
    batch = engine.decide(Requests.from_dicts(s, items))
    log.append(batch, s)
    return [str(d) for d in batch.decision_id]


def _rows(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def test_replicas_follow_the_log_and_skip_the_one_a_reader_holds(demo_copy):
    log = DecisionLog.open(demo_copy)
    rep = live.Replicator(log, interval_s=3600)  # first update at start; the rest by hand
    try:
        first = live.wait_for_replica(demo_copy, 60)
        held = DecisionLog.open_live(demo_copy)
        assert held.replica.generation == first.generation
        for t in live.TABLES:  # a copy row for row, so everything that reads a log works on it
            assert _rows(held.con, t) == _rows(log.con, t), t
        assert held.verify().head_hash == log.verify().head_hash

        ids = _decide(log, 5, seed=1)
        other = rep.refresh()  # the held replica is locked: the other one is brought up to date
        assert other is not None and other != first.name
        fresh = DecisionLog.open_live(demo_copy, newer_than=held.replica.generation)
        assert fresh is not None and fresh.replica.decisions == first.decisions + 5
        assert fresh.con.execute("SELECT count(*) FROM decisions WHERE decision_id IN (SELECT unnest(?::VARCHAR[]))",
                                 [ids]).fetchall()[0][0] == 5
        assert fresh.verify().ok and fresh.verify().head_hash == log.verify().head_hash

        _decide(log, 3, seed=2)
        skipped = rep.skipped
        assert rep.refresh() is None and rep.skipped == skipped + 1  # both held: skipped, not waited for
        held.close()
        assert rep.refresh() == first.name  # released: refreshed with only what is new
        fresh.close()
        assert rep.refresh() == other  # the other one catches up too
        assert rep.refresh() is None  # nothing new: nothing written
        newest = DecisionLog.open_live(demo_copy)
        assert newest.replica.decisions == first.decisions + 8 and newest.verify().ok
        newest.close()
    finally:
        rep.close()
        log.close()
    assert live.replicas(demo_copy) == []  # the manifest goes with the service


def test_a_replica_of_another_log_is_rebuilt(demo_copy, tmp_path):
    log = DecisionLog.open(demo_copy)
    rep = live.Replicator(log, interval_s=3600)
    live.wait_for_replica(demo_copy, 60)
    rep.close()
    log.close()
    other = tmp_path / "other.duckdb"  # a different log at another path, given the first log's replicas
    shutil.copy(demo_copy, other)
    shutil.copy(str(demo_copy) + ".key", str(other) + ".key")
    with DecisionLog.open(other) as lg:
        lg.con.execute("UPDATE chain SET chain_hash = 'x' || chain_hash WHERE seq = (SELECT max(seq) FROM chain)")
    shutil.copytree(live.live_dir(demo_copy), live.live_dir(other))
    with DecisionLog.open(other) as lg:
        rep = live.Replicator(lg, interval_s=3600)
        info = live.wait_for_replica(other, 60)
        r = DecisionLog.open_live(other)
        assert r.con.execute("SELECT max(chain_hash) FILTER (WHERE seq = (SELECT max(seq) FROM chain)) FROM chain"
                             ).fetchall()[0][0].startswith("x"), "the replica must be rebuilt from this log"
        assert info.decisions == _rows(lg.con, "decisions")
        r.close()
        rep.close()


def test_a_reader_waits_for_the_freshest_replica_while_it_is_refreshed(demo_copy):
    """A reader that arrives while the service refreshes the freshest replica (locked for a
    moment) gets it once it is free, not the other replica, which a long-lived reader (a
    dashboard) may have kept at an old state; after the wait it takes the other one."""
    import duckdb

    log = DecisionLog.open(demo_copy)
    rep = live.Replicator(log, interval_s=3600)  # its thread makes the first replica; the rest by hand
    try:
        deadline = time.monotonic() + 60
        while not rep.state and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rep.refresh() is not None and len(rep.state) == 2  # the second replica, of the same rows
        ids = _decide(log, 4, seed=3)
        assert rep.refresh() is not None
        freshest, older = live.replicas(demo_copy)
        assert freshest.decisions == older.decisions + 4
        lock = duckdb.connect(freshest.path)  # what a refresh does to it: held read-write
        threading.Timer(0.4, lock.close).start()
        got = DecisionLog.open_live(demo_copy)
        assert got.replica.name == freshest.name
        assert got.con.execute("SELECT count(*) FROM decisions WHERE decision_id IN (SELECT unnest(?::VARCHAR[]))",
                               [ids]).fetchall()[0][0] == 4
        got.close()
        lock = duckdb.connect(freshest.path)  # held for longer than a reader waits: the other one
        try:
            t = time.monotonic()
            found = live.open_replica(demo_copy, wait_s=0.3)
            assert found is not None and found[1].name == older.name and time.monotonic() - t >= 0.3
            found[0].close()
        finally:
            lock.close()
    finally:
        rep.close()
        log.close()


def test_dashboard_and_service_run_together(demo_copy):
    db = demo_copy  # a private copy: the service may hold and change it
    port = _free_port()
    proc = _start(db, port)
    live.wait_for_replica(db, 60)  # the first full copy, made as the service starts
    latencies: list[float] = []
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def client(k: int) -> None:
        i = 0
        while not stop.is_set():
            body = json.dumps({**CUSTOMER, "customer_id": f"c{k}-{i}"}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/decide", data=body,
                                         headers={"content-type": "application/json"})
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=10) as r:
                did = json.loads(r.read())["decision_id"]
            latencies.append(time.perf_counter() - t)
            acked.append((time.monotonic(), did))
            i += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        # the dashboard, in its own runs, while decisions stream in
        os.environ["KLARTEXT_DB"] = str(db)
        for _ in range(2):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
            assert not at.exception, [e.value for e in at.exception]
            assert any("Live" in c.value and "klartext serve" in c.value for c in at.sidebar.caption)
        # a reader sees an acknowledged decision within a few seconds
        time.sleep(1)
        t_ack, did = acked[-1]
        seen = None
        while time.monotonic() - t_ack < 15:
            with DecisionLog.open(db, read_only=True) as lg:
                assert lg.replica is not None
                if lg.con.execute("SELECT count(*) FROM decisions WHERE decision_id = ?", [did]).fetchall()[0][0]:
                    seen = time.monotonic() - t_ack
                    break
            time.sleep(0.2)
        assert seen is not None and seen < 5, seen
        # the CLI reads the replica too, and says so
        for args in (["verify"], ["explain", did]):
            r = subprocess.run([sys.executable, "-m", "klartext.cli", *args, "--db", str(db)], cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            assert f"Note: `klartext serve` (pid {proc.pid}) holds {db}; reading its live replica" in r.stderr
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
        assert health["live_replicas"]["error"] is None and health["live_replicas"]["updates"] >= 2
    finally:
        os.environ.pop("KLARTEXT_DB", None)
        stop.set()
        for t in threads:
            t.join()
        proc.terminate()
        proc.wait(timeout=30)
    # the service was never blocked by the readers
    assert len(latencies) > 50 and float(np.percentile(latencies, 99)) < 1.0, max(latencies)
    with DecisionLog.open(db, read_only=True) as lg:
        assert lg.replica is None and lg.verify().ok
        ids = [d for _, d in acked]
        assert lg.con.execute("SELECT count(*) FROM decisions WHERE decision_id IN (SELECT unnest(?::VARCHAR[]))",
                              [ids]).fetchall()[0][0] == len(ids)


def test_replicas_are_refreshed_only_while_someone_reads(demo_copy):
    log = DecisionLog.open(demo_copy)
    rep = live.Replicator(log, interval_s=0.1, idle_after_s=1.0)
    try:
        deadline = time.monotonic() + 60
        while len(rep.state) < 2 and time.monotonic() < deadline:  # both made at start, reader or not
            time.sleep(0.05)
        assert len(rep.state) == 2
        (live.live_dir(demo_copy) / live.READERS).touch()
        os.utime(live.live_dir(demo_copy) / live.READERS, (0, 0))  # the last reader left long ago
        gen = rep.generation
        _decide(log, 2, seed=7)
        time.sleep(1.0)
        assert rep.generation == gen and rep.idle_ticks > 0 and not rep.status()["readers"]
        assert live.replicas(demo_copy)  # a reader asks: copying resumes
        deadline = time.monotonic() + 30
        while rep.generation == gen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rep.generation > gen
        assert max(r.decisions for r in live.replicas(demo_copy)) == _rows(log.con, "decisions")
    finally:
        rep.close()
        log.close()


def test_the_what_if_beside_a_running_service_reads_the_factors_once_not_every_run(demo_copy, monkeypatch):
    """A live log changes every second under load; the re-deciding tabs read its factors (seconds
    on 10M decisions) once per :data:`pages.common.FACTORS_MAX_AGE_S`, not on every page run,
    and say until when they re-decide."""
    import streamlit as st

    from analysis import tradeoff as T
    from pages import common

    db = demo_copy
    port = _free_port()
    proc = _start(db, port)
    live.wait_for_replica(db, 60)
    st.cache_resource.clear()
    st.cache_data.clear()
    common._FACTOR_KEYS.clear()
    common._FACTOR_NEXT.clear()
    calls = []
    real = T.load_factors
    # a re-read takes 2 s (as on a large log): the page runs meanwhile go on with the held factors
    monkeypatch.setattr(T, "load_factors", lambda *a, **k: calls.append(1) or (len(calls) > 1 and time.sleep(2))
                        or real(*a, **k))
    monkeypatch.setenv("KLARTEXT_DB", str(db))

    def decide(n: int) -> None:
        for i in range(n):
            body = json.dumps({**CUSTOMER, "customer_id": f"wi-{len(calls)}-{i}-{time.time()}"}).encode()
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/decide", data=body, headers={
                "content-type": "application/json"}), timeout=10).read()

    def newer(than: int) -> int:
        deadline = time.time() + 20
        while live.replicas(db)[0].generation == than and time.time() < deadline:
            time.sleep(0.2)
        return live.replicas(db)[0].generation

    try:
        first = live.replicas(db)[0].generation
        decide(3)  # (today's decisions in the replica: the sidebar's period, set on the first run, holds them)
        newer(first)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("pages/tradeoffs.py")
        at.run()
        at.session_state["to_tab"] = "What-if"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        generations = set()
        for weight in (2.0, 3.0):  # new decisions, a newer replica, another setting
            before = live.replicas(db)[0].generation
            decide(5)
            generations.add(newer(before))
            at.number_input(key="wi_rw").set_value(weight).run()
            assert not at.exception, [e.value for e in at.exception]
        assert len(generations) == 2
        assert len(calls) == 1, calls  # (before: once per run on a newer replica)
        assert any("A running service writes this log" in c.value for c in at.caption), [c.value for c in at.caption]
        read_at = common._FACTOR_KEYS[str(Path(db).resolve())]
        monkeypatch.setattr(common, "FACTORS_MAX_AGE_S", 0.0)  # past the age: read again, in the background
        before = live.replicas(db)[0].generation
        decide(3)
        newer(before)
        at.number_input(key="wi_rw").set_value(4.0).run()
        assert not at.exception, [e.value for e in at.exception]
        # this run went on with the factors it had; the newer replica's are read meanwhile
        assert common._FACTOR_KEYS[str(Path(db).resolve())] == read_at
        for fut in list(common._factor_reads().values()):
            fut.result(timeout=60)
        assert len(calls) == 2, calls
        at.number_input(key="wi_rw").set_value(5.0).run()
        assert not at.exception, [e.value for e in at.exception]
        assert common._FACTOR_KEYS[str(Path(db).resolve())][2] > read_at[2]  # the next run takes them up
    finally:
        proc.terminate()
        proc.wait(timeout=30)
