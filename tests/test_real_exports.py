"""Exports as they really are: several rows per action, Pega's own stages, at scale.

The shape comes from :mod:`decision_log.samples` (measured on a public 1.3M-row Pega v2
export): 1–8 rows per (interaction, action), five stage groups ordered by Stage_pyOrder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from decision_log import queries
from decision_log.importers import import_file
from decision_log.samples import pega_v2_export
from decision_log.store import DecisionLog
from explain import figures
from explain.api import Explainer
from explain.text import contrast_text, explanation_text
from klartext.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    """A v2 export of 300 interactions (about 56,000 rows) and the log it was imported into."""
    d = tmp_path_factory.mktemp("v2")
    src = d / "export.parquet"
    pega_v2_export(src, 300, seed=1)
    db = d / "v2.duckdb"
    with DecisionLog.open(db) as log:
        rep = import_file(log, "pega-v2", str(src))
    return src, db, rep


def _repeated_generic(path: Path, decisions: int, per: int = 61, actions: int = 20, seed: int = 3) -> None:
    """A generic export with ``per`` rows per decision over ``actions`` action ids (so each
    action comes back about three times), every row different."""
    rng = np.random.default_rng(seed)
    n = decisions * per
    d = np.repeat(np.arange(decisions), per)
    pd.DataFrame({
        "decision_id": [f"D{i:06d}" for i in d], "ts": "2024-05-01 10:00:00",
        "customer": [f"C{i % 997}" for i in d], "channel": "web",
        "action_id": [f"offer_{k}" for k in rng.integers(0, actions, n)],
        "stage": rng.choice(["eligibility", "suitability", "contact"], n),
        "rule": [f"component_{k}" for k in rng.integers(0, 50, n)],
        "propensity": rng.random(n), "value": rng.uniform(1, 9, n), "context_weight": 1.0, "lever": 1.0,
    }).assign(priority=lambda f: f.propensity * f.value).to_csv(path, index=False)


def test_repeated_action_ids_never_raise_a_false_tamper_alarm(tmp_path):
    # 5,000 decisions × 61 rows with repeated action ids: every verification passes, every time,
    # also after the log is closed and opened again (rows come back in their logged order)
    src = tmp_path / "repeated.csv"
    _repeated_generic(src, 5_000)
    db = tmp_path / "rep.duckdb"
    with DecisionLog.open(db) as log:
        rep = import_file(log, "generic", str(src))
        assert (rep.decisions_added, rep.candidates_added, rep.bad_rows) == (5_000, 305_000, 0)
        results = [log.verify() for _ in range(3)]
    assert all(r.ok for r in results), [r.problem for r in results]
    for _ in range(2):
        with DecisionLog.open(db, read_only=True) as log:
            r = log.verify()
            assert r.ok, (r.first_bad_decision, r.problem)
            # each decision's rows are numbered 0..k-1 in the file's order
            first = log.con.execute("SELECT list(action_id ORDER BY ordinal) FROM candidates "
                                    "WHERE decision_id = 'generic:D000007'").fetchall()[0][0]
    assert first == pd.read_csv(src).query("decision_id == 'D000007'")["action_id"].tolist()


def test_a_real_shaped_v2_export_imports_verifies_and_keeps_pegas_stages(v2):
    src, db, rep = v2
    df = pd.read_parquet(src)
    assert rep.rows == len(df) and rep.bad_rows == 0 and rep.decisions_added == 300
    assert df.groupby(["pxInteractionID", "pyName"]).size().max() > 1  # the shape the tests are about
    with DecisionLog.open(db, read_only=True) as log:
        for _ in range(3):
            assert log.verify().ok
        con = log.con.cursor()
        recorded = con.execute("SELECT stage, stage_group, stage_order FROM stages ORDER BY stage_order").fetchall()
        fun = queries.funnel(con)
        grouped = queries.funnel(con, by="group")
    expect = (df[["Stage_pyName", "Stage_pyStageGroup", "Stage_pyOrder"]].drop_duplicates()
              .sort_values("Stage_pyOrder").itertuples(index=False, name=None))
    assert recorded == list(expect)
    # the funnel in Pega's order; rows stopping and interactions reaching each stage, as the file says
    assert fun["stage"].tolist() == [s for s, _, _ in recorded]
    deepest = df.groupby("pxInteractionID")["Stage_pyOrder"].max()
    for r in fun.itertuples():
        assert r.rows == int((df["Stage_pyName"] == r.stage).sum())
        assert r.interactions_reaching == int((deepest >= r.stage_order).sum())
        assert r.interactions_stopping == df.loc[df["Stage_pyName"] == r.stage, "pxInteractionID"].nunique()
    assert grouped["stage"].tolist() == ["EngagementPolicies", "JourneysContactPolicies", "Arbitration", "Bundling",
                                         "Output"]
    assert grouped["rows"].sum() == len(df)
    assert grouped["interactions_reaching"].iloc[0] == 300


def test_imported_decisions_with_repeated_actions_explain_without_crashing(v2):
    src, db, _ = v2
    df = pd.read_parquet(src)
    with DecisionLog.open(db, read_only=True) as log:
        did = log.con.execute("SELECT decision_id FROM decisions WHERE chosen_action IS NOT NULL "
                              "ORDER BY seq LIMIT 1").fetchall()[0][0]
        ex = Explainer(log)
        e = ex.explain(did)
        loser = e.candidates.loc[~e.candidates["selected"], "action_id"].iloc[0]
        text = explanation_text(e)
        c = ex.why_not(did, loser)
    rows = df[df.pxInteractionID == did.split(":", 1)[1]]
    # one line per action (where it got furthest), every component row listed in the file's order
    assert len(e.candidates) == rows["pyName"].nunique() and e.candidates["action_id"].is_unique
    assert e.component_level and e.rows["action_id"].tolist() == rows["pyName"].tolist()
    presented = set(rows.loc[rows.pxRecordType == "OUTPUT", "pyName"])
    assert set(e.candidates.loc[e.candidates["selected"], "action_id"]) == presented == set(e.chosen)
    grid = figures.decision_grid(e.candidates, e.stages).data[0]
    assert len(grid.y) == rows["pyName"].nunique()
    assert list(grid.x) == ["Eligibility", "Applicability", "Suitability", "ContactPolicies", "Arbitration",
                            "Bundling", "Result"]
    # no action is both selected and removed in the grid
    for z in grid.z:
        assert not (z[-1] == 2.0 and 0.0 in z[:-1])
    assert f"Component rows ({len(rows):,}, in logged order)" in text
    assert c.kind == "filtered" and loser in contrast_text(c)


def test_every_command_runs_on_an_imported_v2_log(v2):
    _, db, _ = v2
    run = CliRunner().invoke
    with DecisionLog.open(db, read_only=True) as log:
        did = log.con.execute("SELECT decision_id FROM decisions WHERE chosen_action IS NOT NULL "
                              "ORDER BY seq LIMIT 1").fetchall()[0][0]
        loser = log.con.execute("SELECT action_id FROM candidates WHERE decision_id = ? AND NOT selected LIMIT 1",
                                [did]).fetchall()[0][0]
    ok = [["decisions"], ["verify"], ["funnel"], ["funnel", "--by", "group", "--json"], ["explain", did],
          ["explain", did, "--vs", loser], ["explain", did, "--json"]]
    for args in ok:
        out = run(main, [*args, "--db", str(db)])
        assert out.exit_code == 0, (args, out.output)
        assert "Traceback" not in out.output
    groups = json.loads(run(main, ["funnel", "--by", "group", "--json", "--db", str(db)]).output)
    assert [g["stage"] for g in groups][-1] == "Output"
    # views that need a strategy say so in words that fit an imported log, and fail
    out = run(main, ["replay", did, "--db", str(db)])
    assert out.exit_code == 1 and "imported from 'pega-v2'" in out.output


@pytest.mark.parametrize("page", ["overview", "funnel", "replay", "customer", "explanations", "models",
                                  "tradeoffs", "integrity"])
def test_every_page_runs_on_an_imported_v2_log(v2, page, monkeypatch):
    _, db, _ = v2
    monkeypatch.setenv("KLARTEXT_DB", str(db))
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=90)
    at.run()
    assert not at.exception, [x.value for x in at.exception]


def test_import_memory_is_bounded_by_rows_not_interactions(tmp_path):
    # a real-sized export (about 1.3M rows, 7,000 interactions): imported in a child process whose
    # peak memory is measured; the old importer counted chunks in interactions (20,000 = the
    # whole file) and peaked at 2.3 GB
    src = tmp_path / "big.parquet"
    rows = pega_v2_export(src, 7_000, seed=5)
    assert rows > 1_250_000
    # VmHWM: this process's own peak (ru_maxrss would also count the parent's, inherited at exec)
    code = ("import json, sys\n"
            "from decision_log.importers import import_file\n"
            "from decision_log.store import DecisionLog\n"
            "with DecisionLog.open(sys.argv[1]) as log:\n"
            "    rep = import_file(log, 'pega-v2', sys.argv[2])\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
            "print(json.dumps({'rows': rep.candidates_added, 'peak_mb': int(hwm.split()[1]) / 1024, "
            "'phases': rep.phases}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.duckdb"), str(src)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["rows"] == rows
    assert res["peak_mb"] <= 1024, (res, out.stderr[-2000:])
