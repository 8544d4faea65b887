"""The service's edges: outcomes are validated and idempotent, no body reaches a 500, every
refusal has the documented shape, and a rejected request logs nothing (security issue,
items 5 and 6)."""

from __future__ import annotations

import copy
import json
import random
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from klartext.serve import create_app

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())


@pytest.fixture
def service(demo_copy):
    with TestClient(create_app(str(demo_copy)), raise_server_exceptions=False) as c:
        did = c.post("/decide", json=CUSTOMER).json()["decision_id"]
        svc = c.app.state.service()
        svc.writer.wait_loaded()  # (answered once journaled: the counts below read the file)
        yield c, svc.log, did


def _rows(log, sql, params=()):
    """Read the log through the running service's own connection (it holds the file)."""
    return log.con.cursor().execute(sql, list(params)).fetchall()


@pytest.mark.parametrize("body, status, error", [
    ('{"decision_id": "%s", "outcome": "accepted", "revenue": NaN}', 422,
     "revenue must be a finite amount of at most 1,000,000,000, got nan."),
    ('{"decision_id": "%s", "outcome": "accepted", "margin": Infinity}', 422,
     "margin must be a finite amount of at most 1,000,000,000, got inf."),
    ('{"decision_id": "%s", "outcome": "accepted", "margin": -1e300}', 422,
     "margin must be a finite amount of at most 1,000,000,000, got -1e+300."),
    ('{"decision_id": "%s", "action_id": "free_yacht", "outcome": "accepted"}', 422,
     "Action 'free_yacht' is not an action of decision '%s'."),
    ('{"decision_id": "nope", "outcome": "accepted"}', 404, "Decision 'nope' is not in the log."),
])
def test_bad_outcomes_are_refused_and_log_nothing(service, body, status, error):
    c, db, did = service
    before = _rows(db, "SELECT count(*) FROM outcomes")[0][0]
    r = c.post("/outcome", content=(body % did if "%s" in body else body).encode(),
               headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json() == {"error": error % did if "%s" in error else error, "hint": r.json()["hint"]}
    assert _rows(db, "SELECT count(*) FROM outcomes")[0][0] == before


def test_one_outcome_per_decision_and_action(service):
    c, db, did = service
    action = c.get(f"/decisions/{did}").json()["decision"]["chosen_actions"][0]
    body = {"decision_id": did, "action_id": action, "outcome": "accepted", "revenue": 80.0, "margin": 20.0,
            "churned": False}
    assert c.post("/outcome", json=body).json() == {"logged": 1, "duplicate": False}
    assert c.post("/outcome", json=body).json() == {"logged": 0, "duplicate": True}  # a retry: logged once
    r = c.post("/outcome", json={**body, "outcome": "rejected"})
    assert r.status_code == 409
    assert r.json()["error"] == (f"An outcome for decision {did!r} and action {action!r} is logged already "
                                 "(accepted, revenue 80, margin 20); it is not changed.")
    r = c.post("/outcome", json={"decision_id": did, "outcome": "none", "churned": True})
    assert r.status_code == 409
    assert r.json()["error"] == f"Decision {did!r} is logged with churned=false; churned=true contradicts it."
    assert _rows(db, "SELECT count(*) FROM outcomes WHERE decision_id = ?", [did])[0][0] == 1
    assert db.verify().ok


@pytest.mark.parametrize("change, error", [
    (lambda b: b.__setitem__("contacts", {"web": 2**63}),
     "request: contacts.web must be a whole number from 0 to 1,000,000,000, got 9223372036854775808."),
    (lambda b: b.__setitem__("rejections", {"winback_20": {"count": 2**70, "days_since_last": 1}}),
     "request: rejections.winback_20.count must be a whole number from 0 to 1,000,000,000, got "
     "1180591620717411303424."),
    (lambda b: b["features"].__setitem__("age", 2**64),
     "request: feature 'age' must be a whole number from -9,007,199,254,740,992 to 9,007,199,254,740,992 (exact in "
     "the models' float64), got 18446744073709551616."),
])
def test_huge_integers_get_a_422_not_a_500(service, change, error):
    c, db, _ = service
    body = copy.deepcopy(CUSTOMER)
    change(body)
    n = _rows(db, "SELECT count(*) FROM decisions")[0][0]
    r = c.post("/decide", json=body)
    assert r.status_code == 422 and r.json()["error"] == error, r.text
    assert _rows(db, "SELECT count(*) FROM decisions")[0][0] == n


def test_unparsable_bodies_and_unknown_paths_have_the_documented_shape(service):
    c, _, _ = service
    for body in (b"[" * 30_000 + b"]" * 30_000, b'{"customer_id": "\xff\xfe"}', b"{"):
        r = c.post("/decide", content=body, headers={"content-type": "application/json"})
        assert r.status_code in (400, 422) and set(r.json()) == {"error", "hint"}, r.text
    r = c.get("/nowhere")
    assert r.status_code == 404 and set(r.json()) == {"error", "hint"}


def test_concurrent_views_of_one_decision_never_500(service):
    c, _, did = service
    codes = []

    def view():
        codes.append(c.get(f"/decisions/{did}").status_code)

    threads = [threading.Thread(target=view) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8


def _mutations(rng: random.Random, base: dict) -> dict:
    """A valid body with one field changed to a hostile value."""
    hostile = [None, True, -1, 0, 2**63, 2**64, -2**63 - 1, 1e308, -1e308, float("nan"), float("inf"), "", "x" * 5000,
               "Kundin Ä", [], {}, [1, 2], {"a": 1}, 1.5, "NaN", "<img src=//evil>", "\u0000"]
    body = copy.deepcopy(base)
    paths = [("customer_id",), ("channel",), ("contacts",), ("rejections",)] + [("features", k) for k in base["features"]]
    path = rng.choice(paths + [("contacts", "web"), ("rejections", "winback_20")])
    where = body
    for k in path[:-1]:
        if not isinstance(where.get(k), dict):
            where[k] = {}
        where = where[k]
    where[path[-1]] = rng.choice(hostile)
    return body


def test_a_mutation_fuzzer_never_gets_a_500_and_rejects_log_nothing(service):
    """One field of a valid body changed per request (the full 10,000-request run is
    benchmarks/fuzz_serve.py; this keeps CI short with 1,500)."""
    c, db, _ = service
    rng = random.Random(7)
    n_before = _rows(db, "SELECT count(*) FROM decisions")[0][0]
    accepted, statuses = 0, {}
    for _ in range(1500):
        body = _mutations(rng, CUSTOMER)
        r = c.post("/decide", content=json.dumps(body, allow_nan=True).encode(),
                   headers={"content-type": "application/json"})
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (body, r.text)
        assert set(r.json()) == ({"error", "hint"} if r.status_code >= 400 else set(r.json()))
        accepted += r.status_code == 200
    assert statuses.get(422, 0) > 500  # the fuzzer reached the validation
    c.app.state.service().writer.wait_loaded()  # (the last answers were journaled; the count reads the file)
    assert _rows(db, "SELECT count(*) FROM decisions")[0][0] == n_before + accepted
