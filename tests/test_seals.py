"""Every table under the seal, signed checkpoints, and a proof for one decision (security
issue, item 4)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from decision_log import integrity
from decision_log.store import DecisionLog
from klartext.cli import main


def _verify(db, *extra) -> tuple[int, str]:
    out = CliRunner().invoke(main, ["verify", "--db", str(db), *extra])
    return out.exit_code, out.output


def _sql(db, *statements) -> None:
    with DecisionLog.open(db) as log:
        for st in statements:
            log.con.execute(st)


@pytest.mark.parametrize("edit, message", [
    ("UPDATE outcomes SET revenue = revenue + 100 WHERE rowid = 3",
     "FAILED in table outcomes: a row of outcomes written by write "),
    ("DELETE FROM outcomes WHERE rowid = 5",
     "FAILED in table outcomes: write "),
    ("INSERT INTO outcomes SELECT decision_id, action_id, 'accepted', 1e6, 1e6, false, ts, NULL FROM outcomes LIMIT 1",
     "FAILED in table outcomes: 1 row(s) of outcomes were added outside Klartext"),
    ("UPDATE strategies SET text = replace(text, 'margin_weight', 'margin_weight ')",
     "FAILED in table strategies: the text of strategy "),
    ("UPDATE models SET metrics = '{\"auc\": 0.99}' WHERE rowid = 0",
     "FAILED in table models: a row of models written by write "),
    ("UPDATE meta SET value = '99' WHERE key = 'schema_version'",
     "FAILED in table meta: a row of meta written by write "),
    ("UPDATE seals SET n_rows = n_rows + 1 WHERE seq = 2",
     "FAILED in table seals: entry 2 "),
    ("INSERT INTO candidates SELECT 'ghost', ts, channel, action_id, issue, \"group\", stage, rule, reason, propensity, "
     "value, context_weight, lever, priority, rank, selected, model_version, ordinal FROM candidates LIMIT 1",
     "FAILED in table candidates: the candidate row of action "),
    # the order of a decision's candidate rows is sealed too: renumbered, or two rows swapped
    ("UPDATE candidates SET ordinal = ordinal + 1 WHERE decision_id = (SELECT min(decision_id) FROM candidates)",
     "the order of its candidate rows was changed"),
    ("UPDATE candidates SET ordinal = 1 - ordinal WHERE ordinal < 2 AND decision_id = "
     "(SELECT min(decision_id) FROM candidates)",
     "its decision row or one of its candidate rows was changed"),
])
def test_every_table_is_under_the_seal(demo_copy, edit, message):
    assert _verify(demo_copy)[0] == 0
    _sql(demo_copy, edit)
    code, out = _verify(demo_copy)
    assert code == 1 and message in out, out


def test_a_changed_record_hash_is_blamed_on_the_chain_table(demo_copy):
    with DecisionLog.open(demo_copy) as log:
        did = log.con.execute("SELECT decision_id FROM chain WHERE seq = 10").fetchall()[0][0]
        log.con.execute("UPDATE chain SET record_hash = repeat('a', 64) WHERE seq = 10")
    code, out = _verify(demo_copy)
    assert code == 1
    assert (f"FAILED at decision {did} (position 10): its record hash in the chain table was changed (the "
            "decision's rows still match the chain).") in out


def _rechain(log) -> None:
    """An insider rebuilds the chain with Klartext's own functions after an edit."""
    con = log.con
    dec = con.sql(integrity.DECISION_SELECT + " ORDER BY seq").to_arrow_table()
    cand = con.sql(integrity.CANDIDATE_SELECT + " ORDER BY decision_id, action_id").to_arrow_table()
    ids = np.asarray(cand.column("decision_id").to_pylist(), dtype=object)
    dids = np.asarray(dec.column("decision_id").to_pylist(), dtype=object)
    records, chained = integrity.record_and_chain(
        integrity.decision_digests(dec),
        integrity.candidate_digests(cand, np.searchsorted(ids, dids, "left"), np.searchsorted(ids, dids, "right")),
        integrity.GENESIS)
    _k_new = pa.table({"seq": dec.column("seq"), "decision_id": dec.column("decision_id"),  # noqa: F841
                       "record_hash": integrity.hex_strings(records), "chain_hash": integrity.hex_strings(chained)})
    con.execute("DELETE FROM chain; INSERT INTO chain BY NAME SELECT * FROM _k_new")


@pytest.fixture
def signed(demo_copy, tmp_path):
    key = tmp_path / "signing.key"
    out = CliRunner().invoke(main, ["keygen", "--out", str(key)])
    assert out.exit_code == 0, out.output
    ckpt = tmp_path / "ckpt.json"
    out = CliRunner().invoke(main, ["checkpoint", "--db", str(demo_copy), "--key", str(key), "--out", str(ckpt)])
    assert out.exit_code == 0, out.output
    return demo_copy, ckpt, tmp_path / "signing.key.pub"


def test_truncation_passes_the_chain_but_not_the_checkpoint(signed):
    db, ckpt, pub = signed
    code, out = _verify(db, "--checkpoint", str(ckpt), "--public-key", str(pub))
    assert code == 0 and "OK: the log extends the checkpoint of " in out
    _sql(db, "DELETE FROM candidates WHERE decision_id IN (SELECT decision_id FROM decisions WHERE seq > 1900)",
         "DELETE FROM decisions WHERE seq > 1900", "DELETE FROM chain WHERE seq > 1900")
    # a chain alone cannot see that its newest links are gone; the dashboard's summaries, which
    # counted them, can (an insider who also took back the summaries' seal entries is caught by
    # the checkpoint alone)
    code, out = _verify(db)
    assert code == 1 and "summary_decisions" in out and "does not add up" in out, out
    code, out = _verify(db, "--checkpoint", str(ckpt), "--public-key", str(pub))
    assert code == 1 and "summary_decisions" in out


def test_an_edit_rechained_by_an_insider_is_caught_by_the_checkpoint(signed):
    db, ckpt, pub = signed
    with DecisionLog.open(db) as log:
        log.con.execute("UPDATE decisions SET selection_probability = 0.123456 WHERE seq = 50")
        _rechain(log)
    assert _verify(db)[0] == 0
    code, out = _verify(db, "--checkpoint", str(ckpt), "--public-key", str(pub))
    assert code == 1 and "the log was re-chained or rewritten since the checkpoint." in out


def test_a_changed_checkpoint_or_another_key_is_refused(signed, tmp_path):
    db, ckpt, pub = signed
    data = json.loads(ckpt.read_text())
    data["decisions"] += 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(data))
    code, out = _verify(db, "--checkpoint", str(forged), "--public-key", str(pub))
    assert code == 2 and "Error: The checkpoint's signature is not valid for this public key" in out
    CliRunner().invoke(main, ["keygen", "--out", str(tmp_path / "other.key")])
    code, out = _verify(db, "--checkpoint", str(ckpt), "--public-key", str(tmp_path / "other.key.pub"))
    assert code == 2 and "not valid for this public key" in out


def test_a_proof_for_one_decision_checks_without_the_log(signed, tmp_path):
    db, ckpt, pub = signed
    with DecisionLog.open(db, read_only=True) as log:
        did = log.con.execute("SELECT decision_id FROM decisions WHERE seq = 1234").fetchall()[0][0]
    proof = tmp_path / "proof.json"
    out = CliRunner().invoke(main, ["prove", did, "--db", str(db), "--checkpoint", str(ckpt), "--out", str(proof)])
    assert out.exit_code == 0, out.output
    db.unlink()  # the reviewer does not have the log
    out = CliRunner().invoke(main, ["check-proof", str(proof), "--public-key", str(pub)])
    assert out.exit_code == 0, out.output
    assert f"OK: decision {did} (" in out.output and "is position 1234 of the log 'copy.duckdb'" in out.output
    # a proof whose chain was changed does not lead to the signed head
    p = json.loads(proof.read_text())
    p["later_record_hashes"][3] = "0" * 64
    proof.write_text(json.dumps(p))
    out = CliRunner().invoke(main, ["check-proof", str(proof), "--public-key", str(pub)])
    assert out.exit_code == 2
    assert f"Error: Decision {did!r} as the proof states it does not lead to the signed head" in out.output


def test_an_untouched_log_verifies_every_table(demo_log):
    code, out = _verify(demo_log)
    assert code == 0
    assert "OK: outcomes, strategies, models, stages, meta and explanations verified; seal head " in out
