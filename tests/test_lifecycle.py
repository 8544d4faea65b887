"""The strategy lifecycle: propose → simulate → approve → activate (canary) → rollback, every
step sealed; the batch job and the running service follow the active version."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from decision_log import lifecycle, register
from decision_log.store import DecisionLog
from decisioning.errors import InputError
from decisioning.scenarios import retail
from decisioning.strategy import load_strategy, parse_strategy
from klartext.cli import main
from klartext.serve import create_app
from tests.test_serve import _free_port, _start

ROOT = Path(__file__).resolve().parent.parent
CHALLENGER = ROOT / "examples" / "challenger.yaml"
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())


def _cli(*args: str, ok: bool = True):
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def _customers(path: Path, n: int, seed: int) -> Path:
    frame, *_ = retail.generate_interactions(retail.generate_customers(n, seed=seed), retail.load_demo_strategy(),
                                             seed=seed)
    frame.to_parquet(path)
    return path


def _versions(db: Path, after_seq: int) -> pd.Series:
    with DecisionLog.open(db, read_only=True) as log:
        return log.con.execute("SELECT strategy_version FROM decisions WHERE seq > ?", [after_seq]).df()[
            "strategy_version"]


def _last_seq(db: Path) -> int:
    with DecisionLog.open(db, read_only=True) as log:
        return int(log.con.execute("SELECT max(seq) FROM decisions").fetchall()[0][0])


def _page(db: str, monkeypatch, lang: str = "en"):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("KLARTEXT_DB", db)
    at = AppTest.from_file(str(ROOT / "pages" / "strategy_versions.py"), default_timeout=120)
    at.session_state["lang"] = lang
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at) -> str:
    parts = [m.value for m in (*at.markdown, *at.caption, *at.success, *at.info, *at.warning, *at.subheader)]
    parts += [df.value.to_string() for df in at.dataframe]
    return "\n".join(str(p) for p in parts).replace("\\", "")  # (markdown escapes)


def test_the_whole_lifecycle_on_the_demo(demo_copy, tmp_path, monkeypatch):
    db = str(demo_copy)
    with DecisionLog.open(db, read_only=True) as log:
        champion = log.latest_strategy_version()
    new = load_strategy(CHALLENGER).version

    out = _cli("strategy", "propose", str(CHALLENGER), "--db", db, "--by", "anna", "--note", "retention counts twice")
    assert new in out.output and champion in out.output
    # refused: approval without a simulation, by the proposer, activation without approval
    res = _cli("strategy", "approve", new[:8], "--db", db, "--by", "ben", "--note", "ok", ok=False)
    assert res.exit_code == 2 and "no stored simulation" in res.output
    res = _cli("strategy", "activate", new[:8], "--db", db, "--share", "0.1", ok=False)
    assert res.exit_code == 2 and "not approved" in res.output

    sim = _cli("strategy", "simulate", new[:8], "--db", db, "--by", "anna", "--boot", "50", "--json")
    figures = json.loads(sim.output[sim.output.index("{"):])
    assert figures["champion"] == champion and figures["decisions"] > 1000
    assert [c["field"] for c in figures["changes"]] == ["kpi.retention_weight"]
    assert 0 < figures["changed"] < 1
    conv = figures["off_policy"]["conversion"]
    assert conv["estimates"]["ips"]["ci_low"] <= conv["estimates"]["ips"]["value"] <= conv["estimates"]["ips"]["ci_high"]

    res = _cli("strategy", "approve", new[:8], "--db", db, "--by", "anna", "--note", "mine", ok=False)
    assert "four eyes" in res.output
    _cli("strategy", "approve", new[:8], "--db", db, "--by", "ben", "--note", "retention up, margin within 2%")
    _cli("strategy", "activate", new[:8], "--db", db, "--share", "0.1", "--by", "carla", "--note", "canary")

    # 20,000 decisions: 10% ± 1% by the new version, the rest by the champion
    cust = _customers(tmp_path / "c.parquet", 20_000, seed=11)
    start = _last_seq(demo_copy)
    res = _cli("run", "--db", db, "--customers", str(cust))
    v = _versions(demo_copy, start)
    assert len(v) == 20_000 and set(v) == {champion, new}
    assert abs((v == new).mean() - 0.10) <= 0.01, (v == new).mean()
    # exactly the customers whose keyed hash falls below the share got the new version
    with DecisionLog.open(db, read_only=True) as log:
        arm = log.con.execute("SELECT customer, strategy_version FROM decisions WHERE seq > ?", [start]).df()
        state = lifecycle.current(log)
    assert ((arm["strategy_version"] == new) == lifecycle.in_canary(state, arm["customer"].tolist())).all()
    # a canary's decisions replay exactly with their own version
    res = _cli("replay", "--db", db, "--sample", "200")
    assert "200 of 200" in res.output or "200 von 200" in res.output, res.output

    status = json.loads(_cli("strategy", "status", "--db", db, "--json").output)
    assert status["champion"] == champion and status["canary"] == new and status["share"] == 0.1
    assert [s["step"] for s in status["record"]] == ["proposed", "simulated", "approved", "activated"]
    assert [s["actor"] for s in status["record"]] == ["anna", "anna", "ben", "carla"]

    # the governance report reads the canary as the experiment it is: canary against the rest, same days
    today = time.strftime("%Y-%m-%d", time.gmtime())
    _cli("report", "--db", db, "--from", today, "--to", today, "--compare-to", "none", "--out", str(tmp_path / "r.json"))
    rep = json.loads((tmp_path / "r.json").read_text())
    canary = next(c for c in rep["changes"] if c["version"] == new)["canary"]
    assert canary["decisions_canary"] + canary["decisions_rest"] == 20_000 and abs(canary["share"] - 0.10) <= 0.01
    shown = next(e for e in canary["effect"] if e["metric"] == "incentive_offered")
    assert shown["low"] <= shown["difference"] <= shown["high"]

    _cli("strategy", "rollback", "--db", db, "--by", "carla", "--note", "margin fell in the canary")
    start = _last_seq(demo_copy)
    _cli("run", "--db", db, "--customers", str(_customers(tmp_path / "d.parquet", 2_000, seed=12)))
    assert set(_versions(demo_copy, start)) == {champion}

    # the Strategy versions page shows the record, the diff and the canary's measured effect, in both languages
    at = _page(db, monkeypatch)
    text = _text(at)
    assert at.title[0].value == "Strategy versions" and "The record is intact" in text
    trail = at.dataframe[0].value
    assert list(trail["Step"]) == ["proposed", "simulated", "approved", "activated", "rolled back"]
    assert list(trail["Who"]) == ["anna", "anna", "ben", "carla", "carla"]
    assert "kpi.retention_weight" in text and "Canary against the rest" in text
    de = _page(db, monkeypatch, "de")
    assert de.title[0].value == "Strategieversionen" and "Teil-Rollout gegen den Rest" in _text(de)

    # every step is sealed: verify counts them, and an edited step is named
    res = _cli("verify", "--db", db)
    assert "5 strategy steps" in res.output
    con = duckdb.connect(str(register.path_of(db)))
    con.execute("UPDATE strategy_steps SET actor = 'mallory' WHERE step = 'approved'")
    con.close()
    res = _cli("verify", "--db", db, ok=False)
    assert res.exit_code == 1 and "strategy_steps (compliance register)" in res.output


def test_the_canary_is_keyed_stable_and_nested():
    ids = [f"p{i}" for i in range(20_000)]
    b = lifecycle.canary_bucket("v1", ids)
    assert ((b >= 0) & (b < 1)).all() and abs((b < 0.25).mean() - 0.25) < 0.01
    assert (lifecycle.canary_bucket("v1", ids) == b).all()  # stable
    assert np.corrcoef(b, lifecycle.canary_bucket("v2", ids))[0, 1] < 0.05  # another version: other customers
    st = lifecycle.State(champion="a", canary="v1", share=0.1)
    ten = lifecycle.in_canary(st, ids)
    st.share = 0.3
    assert (lifecycle.in_canary(st, ids)[ten]).all()  # raising the share keeps everyone in


def test_refusals_name_the_next_step(demo_copy, tmp_path):
    db = str(demo_copy)
    res = _cli("strategy", "rollback", "--db", db, "--note", "x", ok=False)
    assert "nothing to roll back" in res.output
    _cli("strategy", "propose", str(CHALLENGER), "--db", db, "--by", "anna")
    res = _cli("strategy", "propose", str(CHALLENGER), "--db", db, "--by", "anna", ok=False)
    assert "was proposed already" in res.output and "simulate" in res.output
    res = _cli("strategy", "activate", "ffff0000", "--db", db, ok=False)
    assert "No strategy version 'ffff0000'" in res.output
    # a third version that becomes champion makes the challenger's simulation stale
    third = tmp_path / "third.yaml"
    third.write_text(CHALLENGER.read_text().replace("retention_weight: 1.0", "retention_weight: 0.7"))
    _cli("strategy", "propose", str(third), "--db", db, "--by", "anna")
    for f in (CHALLENGER, third):
        v = load_strategy(f).version
        _cli("strategy", "simulate", v[:8], "--db", db, "--boot", "50", "--decisions", "500")
    v3 = load_strategy(third).version
    _cli("strategy", "approve", v3[:8], "--db", db, "--by", "ben", "--note", "ok")
    _cli("strategy", "activate", v3[:8], "--db", db)
    v2 = load_strategy(CHALLENGER).version
    res = _cli("strategy", "approve", v2[:8], "--db", db, "--by", "ben", "--note", "ok", ok=False)
    assert "Simulate it again" in res.output
    # the batch job refuses another file than the active version
    res = CliRunner().invoke(main, ["run", "--db", db, "--strategy", str(CHALLENGER), "--customers",
                                    str(_customers(tmp_path / "c.parquet", 50, seed=1))])
    assert res.exit_code == 2 and "is managed" in res.output
    # a full rollback restores the version before
    _cli("strategy", "rollback", "--db", db, "--note", "back")
    st = json.loads(_cli("strategy", "status", "--db", db, "--json").output)
    assert st["champion"] not in (v2, v3) and st["canary"] is None


def _record(db: str, *steps) -> str:
    """Propose, simulate (figures are not needed here), approve and activate the challenger in the register."""
    s = load_strategy(CHALLENGER)
    with DecisionLog.open(db, read_only=True) as log:
        champion = log.latest_strategy_version()
    with register.opened(db) as reg:
        lifecycle.propose(reg, s, champion, "anna", "cli")
        lifecycle.record_simulation(reg, s.version, {"test": True}, "anna", "cli")
        lifecycle.approve(reg, s.version, "ben", "cli", "ok")
    return s.version


def test_the_service_follows_activation_and_rollback_without_a_restart(demo_copy):
    db = str(demo_copy)
    new = _record(db)
    people = [{**CUSTOMER, "customer_id": f"K{i:05d}"} for i in range(300)]
    with TestClient(create_app(db, follow_s=0.2)) as c:
        svc = c.app.state.service()
        champion = svc.strategy.version
        assert {c.post("/decide", json=p).json()["strategy_version"] for p in people[:20]} == {champion}
        with register.opened(db) as reg:
            lifecycle.activate(reg, new, 0.5, "carla", "cli")
        deadline = time.time() + 10
        while svc.deciders.canary is None and time.time() < deadline:
            time.sleep(0.05)
        assert svc.deciders.canary is not None, svc.follow
        health = c.get("/health").json()["lifecycle"]
        assert health["canary"] == new and health["share"] == 0.5 and health["deciding"] == [champion, new]
        answers = [c.post("/decide", json=p).json() for p in people]
        by = pd.Series([a["strategy_version"] for a in answers])
        assert set(by) == {champion, new} and 0.35 < (by == new).mean() < 0.65
        # the answer names the version, and the log agrees
        svc.writer.wait_loaded()  # (answered once journaled: read from the file)
        logged = dict(svc.log.con.cursor().execute(
            "SELECT decision_id, strategy_version FROM decisions WHERE decision_id IN (SELECT unnest(?))",
            [[a["decision_id"] for a in answers]]).fetchall())
        assert all(logged[a["decision_id"]] == a["strategy_version"] for a in answers)
        with register.opened(db) as reg:
            lifecycle.rollback(reg, "carla", "cli", "enough")
        deadline = time.time() + 10
        while svc.deciders.canary is not None and time.time() < deadline:
            time.sleep(0.05)
        assert {c.post("/decide", json=p).json()["strategy_version"] for p in people[:50]} == {champion}


def test_serve_refuses_a_strategy_file_other_than_the_active_version(demo_copy):
    db = str(demo_copy)
    _record(db)
    with pytest.raises(InputError, match="is managed"):
        with TestClient(create_app(db, str(CHALLENGER))):
            pass


def test_kill_9_during_a_switch_loses_no_acknowledged_decision(demo_copy):
    db = str(demo_copy)
    new = _record(db)
    port = _free_port()
    proc = _start(Path(db), port)
    acked: list[tuple[str, str]] = []
    errors: list[int] = []
    stop = threading.Event()

    def client(k: int) -> None:
        i = 0
        while not stop.is_set():
            body = json.dumps({**CUSTOMER, "customer_id": f"W{k}-{i}"}).encode()
            i += 1
            req = urllib.request.Request(f"http://127.0.0.1:{port}/decide", data=body,
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    a = json.loads(r.read())
                    acked.append((a["decision_id"], a["strategy_version"]))
            except urllib.error.HTTPError as exc:
                errors.append(exc.code)
            except (OSError, urllib.error.URLError):
                return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    with register.opened(db) as reg:
        lifecycle.activate(reg, new, 0.5, "carla", "cli")
    deadline = time.time() + 15
    while not any(v == new for _, v in acked) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert not [e for e in errors if e >= 500], errors
    versions = {v for _, v in acked}
    assert new in versions and len(versions) == 2
    with DecisionLog.open(db) as log:  # reopening replays the WAL
        log.con.register("acked", pd.DataFrame(acked, columns=["decision_id", "strategy_version"]))
        found = log.con.execute("SELECT count(*) FROM acked a JOIN decisions d ON d.decision_id = a.decision_id "
                                "AND d.strategy_version = a.strategy_version").fetchall()[0][0]
        partial = log.con.execute("SELECT count(*) FROM (SELECT decision_id, count(*) AS n FROM candidates "
                                  "GROUP BY ALL HAVING n <> 29)").fetchall()[0][0]
        assert log.verify().ok
    assert found == len(acked) and partial == 0


def test_register_uses_within_one_process_wait_for_each_other(demo_copy):
    """DuckDB refuses a read-only and a read-write connection to one file side by side in a
    process: a service's decide thread re-reading objections, its follower reading the steps
    and a request recording an objection must take turns, not fail (seen as 5xx in a switch)."""
    db = str(demo_copy)
    with register.opened(db) as reg:  # the register exists
        reg.record_access("t", "cli", "access_log", None)
    errors: list[BaseException] = []

    def record() -> None:
        try:
            with register.opened(db) as reg:
                reg.record_objection("p1", None, "care", "api")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with register.opened(db, read_only=True) as reg:
        t = threading.Thread(target=record)
        t.start()
        t.join(0.5)
        assert t.is_alive() and not errors  # waiting for its turn, not failing
        assert reg.objections() == {}
    t.join(10)
    assert not errors and not t.is_alive()
    with register.opened(db, read_only=True) as reg:
        assert set(reg.objections()) == {"p1"}


def test_a_forged_or_edited_step_is_not_followed(demo_copy, monkeypatch):
    """Someone with write access to the register slips in an activation nobody approved (sealed
    like a real one) or edits the share of a real one: neither steers what decides."""
    db = str(demo_copy)
    new = _record(db)  # proposed, simulated, approved
    with register.opened(db) as reg:
        lifecycle.propose(reg, _third(), lifecycle.state(reg).champion, "anna", "cli")
    third = _third().version
    with TestClient(create_app(db, follow_s=0.2)) as c:
        svc = c.app.state.service()
        champion = svc.strategy.version
        with register.opened(db) as reg:  # sealed like a real step, but never simulated nor approved
            reg._write("strategy_steps", [(register._now(), "activated", third, "mallory", "cli", None, 1.0,
                                           champion, None, None)])
        time.sleep(1.0)
        assert svc.deciders.champion.strategy.version == champion and svc.follow["refused"].startswith("activated")
        assert c.post("/decide", json=CUSTOMER).json()["strategy_version"] == champion
        # the page names the forged step; no further step is recorded on such a record
        at = _page(db, monkeypatch)
        assert "breaks the lifecycle's rules" in at.error[0].value and "mallory" in at.error[0].value
        with register.opened(db) as reg, pytest.raises(Exception, match="rules forbid"):
            lifecycle.activate(reg, new, 0.1, "carla", "cli")
    # an edited share: the seal names it, and nothing decides from the record
    with register.opened(db) as reg:
        reg.con.execute("DELETE FROM strategy_steps WHERE actor = 'mallory'")
        reg.con.execute("UPDATE strategy_steps SET note = 'edited' WHERE step = 'approved'")
    res = CliRunner().invoke(main, ["run", "--db", db, "--customers", str(_customers(demo_copy.parent / "c.parquet",
                                                                                       20, seed=3))])
    assert res.exit_code == 2 and "does not verify" in res.output


def _third():
    return parse_strategy(CHALLENGER.read_text().replace("retention_weight: 1.0", "retention_weight: 0.8"),
                          source="third.yaml")


@pytest.mark.parametrize("share", [0.0, 1.5, float("nan"), -0.1])
def test_a_share_outside_0_to_1_is_refused_by_value(tmp_path, share):
    db = str(tmp_path / "x.duckdb")  # (the register alone: no decision is needed to refuse a share)
    s = load_strategy(CHALLENGER)
    with register.opened(db) as reg:
        lifecycle.propose(reg, s, "0123456789abcdef", "anna", "cli")
        lifecycle.record_simulation(reg, s.version, {"test": True}, "anna", "cli")
        with pytest.raises(InputError, match="An approval needs a note saying why"):
            lifecycle.approve(reg, s.version, "ben", "cli", "  ")
        lifecycle.approve(reg, s.version, "ben", "cli", "ok")
        with pytest.raises(InputError) as exc:
            lifecycle.activate(reg, s.version, share, "carla", "cli")
        assert str(exc.value).startswith(f"--share must be above 0 and at most 1, got {share!r}.")
        assert "--share 0.1" in exc.value.hint
        assert lifecycle.state(reg).canary is None
