"""Importing decisions made elsewhere: Pega v1 / v2 samples, the generic format, bad rows."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from decision_log.importers import import_file
from decision_log.store import DecisionLog
from decisioning.errors import InputError
from explain.api import Explainer
from klartext.cli import main

PEGA = Path(__file__).resolve().parent / "data" / "pega"
V1 = PEGA / "sample_explainability_extract.parquet"
V2 = PEGA / "sample_eev2_minimal.csv"
ROOT = Path(__file__).resolve().parent.parent


def test_v1_sample_imports_completely_and_consistently(tmp_path):
    with DecisionLog.open(tmp_path / "v1.duckdb") as log:
        rep = import_file(log, "pega-v1", str(V1))
        again = import_file(log, "pega-v1", str(V1))
        n_dec, n_cand = log.con.execute("SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM candidates)"
                                        ).fetchall()[0]
        bad = log.con.execute("SELECT count(*) FROM candidates WHERE abs(priority - propensity * value * "
                              "context_weight * lever) > 1e-12 * abs(priority)").fetchall()[0][0]
        sel = log.con.execute("SELECT count(*) FROM candidates WHERE selected").fetchall()[0][0]
        assert log.verify().ok
    assert (rep.decisions_added, rep.candidates_added, rep.inconsistent_rows, rep.bad_rows) == (100, 7297, 0, 0)
    assert (again.decisions_added, again.decisions_already_logged) == (0, 100)
    assert (n_dec, n_cand, bad, sel) == (100, 7297, 0, 100)


def test_v1_inconsistent_priority_and_rank_are_reported(tmp_path):
    df = pd.read_parquet(V1)
    df.loc[5, "Priority"] = df.loc[5, "Priority"] * 2
    path = tmp_path / "v1_edit.parquet"
    df.to_parquet(path)
    with DecisionLog.open(tmp_path / "v1.duckdb") as log:
        rep = import_file(log, "pega-v1", str(path))
    assert rep.inconsistent_rows >= 1
    edited = [x for x in rep.inconsistent_examples if x["row"] == 6]
    assert len(edited) == 1 and edited[0]["problem"].startswith("Priority ")
    assert "≠ FinalPropensity × Value × ContextWeight × Weight" in edited[0]["problem"]
    # doubling one priority also moves ranks: those rows are reported as rank disagreements
    assert all("pxRank" in x["problem"] for x in rep.inconsistent_examples if x["row"] != 6)


def test_v2_sample_yields_exactly_the_funnel_its_rows_state(tmp_path):
    src = pd.read_csv(V2)
    with DecisionLog.open(tmp_path / "v2.duckdb") as log:
        rep = import_file(log, "pega-v2", str(V2))
        got = log.con.execute("SELECT decision_id, action_id, stage, rule, selected, ordinal FROM candidates "
                              "ORDER BY decision_id, ordinal").df()
        recorded = log.con.execute("SELECT stage, stage_group, stage_order FROM stages ORDER BY stage_order").fetchall()
        assert log.verify().ok
    assert (rep.decisions_added, rep.candidates_added) == (3, 12)
    # Pega's own stage names, groups and orders are kept (never mapped onto Klartext's)
    assert recorded == [("Eligibility", "Eligibility", 1500), ("ContactPoliciesActionLimits", "FinalActionsProcessing",
                                                              3900), ("Output", "Output", 4000)]
    for r in src.itertuples():
        row = got[(got.decision_id == f"pega-v2:{r.pxInteractionID}") & (got.action_id == r.pyName)].iloc[0]
        assert row.stage == r.Stage_pyName
        assert bool(row.selected) == (r.pxRecordType == "OUTPUT")
        assert (row.rule if isinstance(row.rule, str) else None) == (
            None if r.pxRecordType == "OUTPUT" else r.pxComponentName)
    # rows keep the file's order within each interaction
    for did, g in got.groupby("decision_id"):
        file_order = src[src.pxInteractionID == did.split(":", 1)[1]]["pyName"].tolist()
        assert g.sort_values("ordinal")["action_id"].tolist() == file_order
        assert g["ordinal"].tolist() == list(range(len(g)))


GENERIC = """decision_id,ts,cust,channel,action_id,stage,rule,reason,propensity,value,context_weight,lever,priority,rank
D1,2024-01-01 10:00,C1,web,a,selected,,,0.5,2,1,1,1.0,1
D1,2024-01-01 10:00,C1,web,b,eligibility,consent,eligibility/consent: email_consent=false,,,,,,
D2,notatime,C2,web,a,selected,,,0.5,2,1,1,1.0,1
D2,2024-01-02 10:00,C2,web,b,ranked,,,0.1,2,1,1,0.2,2
D3,2024-01-02 10:00,C3,web,a,ranked,,,abc,2,1,1,1.0,1
"""


def test_generic_format_with_mapping_and_bad_rows(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text(GENERIC)
    with DecisionLog.open(tmp_path / "g.duckdb") as log:
        rep = import_file(log, "generic", str(path), {"customer": "cust"})
        ids = [r[0] for r in log.con.execute("SELECT decision_id FROM decisions").fetchall()]
        reason = log.con.execute("SELECT reason FROM candidates WHERE action_id = 'b'").fetchall()[0][0]
    assert ids == ["generic:D1"]  # D2 and D3 each have a bad row: left out whole
    assert (rep.bad_rows, rep.decisions_left_out) == (2, 2)
    assert [(b.row, b.column, b.value, b.problem) for b in rep.bad_examples] == [
        (3, "ts", "notatime", "not a valid timestamptz"), (5, "propensity", "abc", "not a valid double")]
    assert reason == "eligibility/consent: email_consent=false"


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text(GENERIC)
    with DecisionLog.open(tmp_path / "g.duckdb") as log, pytest.raises(InputError) as err:
        import_file(log, "generic", str(path))
    assert err.value.message == f"{path}: column 'customer' is missing for format generic."


def test_cli_import_and_views_on_imported_decisions(tmp_path, monkeypatch):
    db = tmp_path / "pega.duckdb"
    out = CliRunner().invoke(main, ["import", "--db", str(db), "--format", "pega-v1", str(V1)])
    assert out.exit_code == 0, out.output
    assert "7,297 rows → 100 decisions with 7,297 candidate rows added" in out.output
    assert "agree on every row" in out.output
    with DecisionLog.open(db, read_only=True) as log:
        did, other = log.con.execute("SELECT decision_id, action_id FROM candidates WHERE rank = 2 LIMIT 1"
                                     ).fetchall()[0]
        ex = Explainer(log)
        e = ex.explain(did)
        c = ex.why_not(did, other)
    assert e.notes[0].startswith("Imported from 'pega-v1': there is no strategy or model to re-execute")
    assert c.kind == "ranked_lower" and abs(sum(t.log_ratio for t in c.terms) - c.log_ratio) < 1e-12
    assert math.isclose(c.log_ratio, math.log(c.priority_winner / c.priority_other), rel_tol=1e-9)
    monkeypatch.setenv("KLARTEXT_DB", str(db))
    for p, heading in (("pages/funnel.py", "Funnel & policies"), ("pages/overview.py", "Overview"),
                       ("pages/replay.py", "Decision replay")):
        at = AppTest.from_file(str(ROOT / p), default_timeout=60)
        at.run()
        assert not at.exception, [x.value for x in at.exception]
        assert at.title[0].value == heading
    assert any(i.value.startswith("Not replayable: imported from 'pega-v1'") for i in at.info)


def test_evidence_file_of_an_imported_decision(tmp_path):
    from explain import evidence

    with DecisionLog.open(tmp_path / "v2.duckdb") as log:
        import_file(log, "pega-v2", str(V2))
        ev = evidence.evidence(log, Explainer(log), "pega-v2:INT-001", "tester")
    html = evidence.to_html(ev)
    assert "<h1>Decision pega-v2:INT-001: evidence</h1>" in html
    assert ev["record"]["record_intact"] and ev["record"]["link_intact"] and not ev["replay"]["replayable"]
    why_not_2 = next(w for w in ev["why_not"] if w["action_id"] == "ACTION2")
    assert "ContactPolicyRule" in html and why_not_2["answer"] in html.replace("&quot;", '"').replace("&#x27;", "'")


def test_an_import_that_fails_part_way_leaves_nothing_behind(tmp_path, monkeypatch):
    # the file is written in parts (one interaction each here); the second part fails: none of the
    # file's decisions, stages or seals may stay, the log verifies, and the import re-runs cleanly
    from decision_log import store

    real = store.DecisionLog.append_prepared
    calls = {"n": 0}

    def failing(self, prepared):
        calls["n"] += 1
        if calls["n"] == 2:
            raise store.LogError("disk full (simulated)", "Free some space.")
        return real(self, prepared)

    with DecisionLog.open(tmp_path / "v2.duckdb") as log:
        before = log.con.execute("SELECT (SELECT count(*) FROM stages), (SELECT count(*) FROM seals)").fetchall()[0]
        monkeypatch.setattr(store.DecisionLog, "append_prepared", failing)
        with pytest.raises(store.LogError, match="disk full"):
            import_file(log, "pega-v2", str(V2), chunk_rows=1)
        assert calls["n"] == 2
        left = log.con.execute("SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM candidates), "
                               "(SELECT count(*) FROM chain), (SELECT count(*) FROM stages), "
                               "(SELECT count(*) FROM seals)").fetchall()[0]
        assert left == (0, 0, 0, *before)
        assert log.verify().ok
        monkeypatch.setattr(store.DecisionLog, "append_prepared", real)
        rep = import_file(log, "pega-v2", str(V2), chunk_rows=1)
        assert rep.decisions_added == log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] > 2
        assert log.verify().ok
