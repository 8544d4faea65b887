"""A stored explanation is evidence or nothing: an edited row is a MISMATCH wherever it is
shown, and `verify` names it (security issue, item 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from decision_log import explanations as store
from decision_log.store import DecisionLog
from explain.api import Explainer
from klartext.cli import main
from klartext.serve import create_app

TAMPERED = "the stored explanation is not what the pinned model computes; the explanations table was changed"


def _stored_choice(db) -> tuple[str, str, list[str]]:
    """A decision whose chosen action has a stored explanation: (decision, action, features)."""
    with DecisionLog.open(db, read_only=True) as log:
        did, aid, feats = log.con.execute(
            "SELECT e.decision_id, e.action_id, e.features FROM explanations e JOIN decisions d "
            "ON d.decision_id = e.decision_id AND d.chosen_action = e.action_id "
            "WHERE len(e.features) > 3 ORDER BY e.decision_id LIMIT 1").fetchall()[0]
    return did, aid, list(feats)


def _tamper(db, did, aid, expr: str, reseal: bool) -> None:
    """Edit one stored explanation; with ``reseal`` the insider recomputes its seal with
    Klartext's own function, so only the recomputation on display can catch it."""
    with DecisionLog.open(db) as log:
        log.con.execute(f"UPDATE explanations SET attributions = {expr} WHERE decision_id = ? AND action_id = ?",
                        [did, aid])
        if reseal:
            cols = ", ".join(f'"{c}"' for c in store.SEALED)
            row = log.con.execute(f"SELECT {cols} FROM explanations WHERE decision_id = ? AND action_id = ?",
                                  [did, aid]).fetchall()[0]
            log.con.execute("UPDATE explanations SET seal = ? WHERE decision_id = ? AND action_id = ?",
                            [store.row_seal(dict(zip(store.SEALED, row))), did, aid])


@pytest.mark.parametrize("expr", ["list_reverse(attributions)", "list_transform(attributions, lambda v: v * 10)",
                                  "list_append(attributions, 0.0)"])
def test_a_resealed_edit_is_a_mismatch_in_the_api_the_cli_and_the_service(demo_copy, expr):
    did, aid, feats = _stored_choice(demo_copy)
    with DecisionLog.open(demo_copy, read_only=True) as log:
        before = Explainer(log).explain(did)
    assert before.attributions[aid].verified
    _tamper(demo_copy, did, aid, expr, reseal=True)

    with DecisionLog.open(demo_copy, read_only=True) as log:
        ca = Explainer(log).explain(did).attributions[aid]
    assert not ca.verified
    assert ca.problems[0].startswith(TAMPERED + (": it holds " if "append" in expr else ": attribution of "))
    # what is shown is the model's own attribution, not the edited one
    assert list(ca.phi) == list(before.attributions[aid].phi)

    out = CliRunner().invoke(main, ["explain", did, "--db", str(demo_copy)])
    assert out.exit_code == 1, out.output  # a mismatch is a failed check
    assert f"MISMATCH — {TAMPERED}: " in out.output
    assert "attributions withheld" in out.output

    with TestClient(create_app(str(demo_copy))) as c:
        body = c.get(f"/decisions/{did}").json()
    got = body["attributions"][aid]
    assert got["verified"] is False
    assert got["problems"][0].startswith(TAMPERED)


def test_an_edit_without_a_new_seal_fails_verify_and_the_bulk_check(demo_copy):
    did, aid, _ = _stored_choice(demo_copy)
    _tamper(demo_copy, did, aid, "list_reverse(attributions)", reseal=False)
    out = CliRunner().invoke(main, ["verify", "--db", str(demo_copy)])
    assert out.exit_code == 1
    assert (f"FAILED at decision {did} " in out.output
            and f"its stored explanation of action {aid!r}: its content was changed since it was computed."
            in out.output)
    with DecisionLog.open(demo_copy, read_only=True) as log:
        summary = Explainer(log).explain_many([did])
    assert summary["failures"] == [{"decision_id": did, "action_id": aid, "problems": [
        TAMPERED + " (its seal does not match its content)"]}]


def test_a_planted_row_without_a_seal_is_named_by_verify(demo_copy):
    did, aid, _ = _stored_choice(demo_copy)
    with DecisionLog.open(demo_copy) as log:
        log.con.execute("UPDATE explanations SET seal = NULL WHERE decision_id = ? AND action_id = ?", [did, aid])
    with DecisionLog.open(demo_copy, read_only=True) as log:
        res = log.verify()
    assert not res.ok and res.first_bad_decision == did
    assert res.problem.startswith(f"its stored explanation of action {aid!r}: it has no seal")
    with DecisionLog.open(demo_copy) as log:  # opening it writable drops the row: derived data
        assert log.con.execute("SELECT count(*) FROM explanations WHERE seal IS NULL").fetchall()[0][0] == 0
        assert log.verify().ok


def test_an_untouched_log_verifies_and_every_stored_row_is_sealed(demo_log):
    with DecisionLog.open(demo_log, read_only=True) as log:
        assert log.verify().ok
        n, sealed = log.con.execute("SELECT count(*), count(seal) FROM explanations").fetchall()[0]
    assert n > 0 and sealed == n
