"""The evidence file of a decision (issue #17): every action's fate, every contrast, the
outcome, record hash, chain position and verification status at export time, who exported it
and when; under 1 MB, printable; the same content as HTML, PDF and JSON, in German and English."""

import json
import re
import shutil
import subprocess

import duckdb
import pytest
from click.testing import CliRunner

from decision_log.store import DecisionLog
from explain import evidence
from explain.api import Explainer
from klartext.cli import main


def _with_outcome(path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT d.decision_id FROM decisions d JOIN outcomes o USING (decision_id) "
                           "WHERE len(d.chosen_actions) = 1 ORDER BY d.seq LIMIT 1").fetchall()[0][0]


def test_the_evidence_holds_everything_a_reviewer_files(demo_log):
    did = _with_outcome(demo_log)
    with DecisionLog.open(demo_log, read_only=True) as log:
        ev = evidence.evidence(log, Explainer(log), did, "Vera Prüfer")
        n_actions = log.con.execute("SELECT count(DISTINCT action_id) FROM candidates WHERE decision_id = ?",
                                    [did]).fetchall()[0][0]
        seq, record_hash = log.con.execute("SELECT seq, record_hash FROM chain WHERE decision_id = ?",
                                           [did]).fetchall()[0]
        outcomes = log.con.execute("SELECT count(*) FROM outcomes WHERE decision_id = ?", [did]).fetchall()[0][0]
    assert ev["exported"]["by"] == "Vera Prüfer" and ev["exported"]["at"].endswith("+00:00")
    assert ev["record"]["seq"] == seq and ev["record"]["record_hash"] == record_hash
    assert ev["record"]["record_intact"] and ev["record"]["link_intact"] and ev["replay"]["reproduced"]
    assert len(ev["decision"]["candidates"]) == n_actions  # every action's fate
    assert len(ev["why_not"]) == n_actions - 1  # why not each of the others, not only the last looked at
    assert len(ev["outcomes"]) == outcomes >= 1
    html = evidence.to_html(ev)
    for text in (record_hash, f"Position {seq}"[9:], "Vera Prüfer", ev["why_not"][-1]["name"], "What happened afterwards"):
        assert text in html, text
    assert len(html.encode()) < 1_000_000 and len(evidence.to_json(ev).encode()) < 1_000_000
    json.loads(evidence.to_json(ev))


def test_a_changed_record_is_flagged_in_its_evidence(demo_copy):
    did = _with_outcome(demo_copy)
    with duckdb.connect(str(demo_copy)) as con:  # an edit behind Klartext's back
        con.execute("UPDATE candidates SET propensity = propensity * 1.01 WHERE decision_id = ? AND selected", [did])
    with DecisionLog.open(demo_copy, read_only=True) as log:
        ev = evidence.evidence(log, Explainer(log), did, "auditor", "de")
    assert not ev["record"]["record_intact"] and ev["record"]["link_intact"]
    assert "VERÄNDERT: Position" in evidence.to_html(ev)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) is not installed")
def test_the_cli_writes_the_evidence_as_pdf_html_and_json_in_german(demo_log, tmp_path):
    for suffix in ("pdf", "html", "json"):
        out = tmp_path / f"e.{suffix}"
        res = CliRunner().invoke(main, ["evidence", "latest", "--db", str(demo_log), "--out", str(out), "--lang", "de",
                                        "--by", "Vera Prüfer"])
        assert res.exit_code == 0, res.output
        assert "unchanged" in res.output and out.stat().st_size < 1_000_000
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "e.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Nachweis" in text and "Exportiert von Vera Prüfer" in text and "Unverändert: Position" in text
    assert "Jede Aktion und ihr Verbleib" in text and "Warum nicht die anderen" in text
    pages = subprocess.run(["pdfinfo", str(tmp_path / "e.pdf")], capture_output=True, text=True).stdout
    assert re.search(r"Page size: +595.276 x 841.89 pts \(A4\)", pages)  # printable: A4, nothing wider than the page
    bad = CliRunner().invoke(main, ["evidence", "latest", "--db", str(demo_log), "--out", str(tmp_path / "e.docx")])
    assert bad.exit_code == 2 and "unknown file type '.docx'" in bad.output and not (tmp_path / "e.docx").exists()
