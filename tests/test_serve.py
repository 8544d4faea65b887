"""The decision service: durable before it answers, clear 4xx for bad input, crash-safe."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from decision_log.store import DecisionLog
from klartext.serve import create_app

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())


@pytest.fixture
def client(demo_copy):
    with TestClient(create_app(str(demo_copy))) as c:
        yield c, demo_copy


def _count(db: Path, decision_id: str) -> tuple[int, int]:
    with DecisionLog.open(db, read_only=True) as log:
        return log.con.execute(
            "SELECT (SELECT count(*) FROM decisions WHERE decision_id = $d), "
            "(SELECT count(*) FROM candidates WHERE decision_id = $d)", {"d": decision_id}).fetchall()[0]


def test_decide_is_logged_with_every_candidate_before_the_answer(demo_copy):
    with TestClient(create_app(str(demo_copy))) as c:
        r = c.post("/decide", json=CUSTOMER)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["logged"] is True
        by_rank = [x["action_id"] for x in body["ranked"] if x["selected"]]
        if body["explored"]:  # (5% of decisions: the first slot was drawn at random, the rest by rank)
            assert sorted(body["chosen_actions"]) == sorted(by_rank) and body["selection_probability"] < 1
        else:
            assert body["chosen_actions"] == by_rank
        rec = c.get(f"/decisions/{body['decision_id']}")
        assert rec.status_code == 200 and len(rec.json()["candidates"]) == 29
        out = c.post("/outcome", json={"decision_id": body["decision_id"], "action_id": body["chosen_actions"][0],
                                       "outcome": "accepted", "revenue": 49.9})
        assert out.status_code == 200 and out.json() == {"logged": 1, "duplicate": False}
        assert c.get("/health").json()["status"] == "ok"
    assert _count(demo_copy, body["decision_id"]) == (1, 29)


@pytest.mark.parametrize("change, status, message", [
    ({"channel": "fax"}, 422, "request: channel 'fax' is not a channel of strategy"),
    ({"features": {**CUSTOMER["features"], "age": "old"}}, 422, "request: feature 'age' must be a whole number"),
    ({"features": {k: v for k, v in CUSTOMER["features"].items() if k != "clv"}}, 422,
     "request: feature 'clv' is missing."),
    ({"extra": 1}, 422, "extra: Extra inputs are not permitted"),
    ({"customer_id": 7}, 422, "customer_id: Input should be a valid string"),
])
def test_bad_input_gets_a_4xx_naming_the_field_and_logs_nothing(client, change, status, message):
    c, _ = client
    before = c.get("/health").json()["logged_since_start"]
    r = c.post("/decide", json={**CUSTOMER, **change})
    assert r.status_code == status, r.text
    assert r.json()["error"].startswith(message), r.json()
    assert c.get("/health").json()["logged_since_start"] == before


def test_malformed_json_nan_and_oversized_bodies(client):
    c, _ = client
    r = c.post("/decide", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    nan = json.dumps({**CUSTOMER, "features": {**CUSTOMER["features"], "cart_value": float("nan")}})
    r = c.post("/decide", content=nan.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422 and "finite" in r.json()["error"]
    big = b'{"customer_id": "' + b"x" * (70 * 1024) + b'"}'
    r = c.post("/decide", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == f"Request body of {len(big):,} bytes is larger than 65,536 bytes."
    r = c.post("/decide", content=iter([big[:40_000], big[40_000:]]), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "A chunked request body is larger than 65,536 bytes."
    small = json.dumps(CUSTOMER).encode()  # a chunked body under the limit is read and decided
    r = c.post("/decide", content=iter([small[:50], small[50:]]), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["logged"]
    assert c.post("/outcome", json={"decision_id": "nope", "outcome": "accepted"}).status_code == 404


def test_a_full_queue_answers_503_with_retry_after(demo_copy):
    app = create_app(str(demo_copy), max_queue=1, max_wait_ms=200, max_batch=1)
    with TestClient(app) as c:
        results = []

        def hit():
            results.append(c.post("/decide", json=CUSTOMER))

        threads = [threading.Thread(target=hit) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = sorted(r.status_code for r in results)
    assert 503 in codes and 200 in codes
    busy = next(r for r in results if r.status_code == 503)
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"].startswith("The service is at capacity; the request was not decided")
    ok_ids = [r.json()["decision_id"] for r in results if r.status_code == 200]
    for did in ok_ids:
        assert _count(demo_copy, did) == (1, 29)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(db: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "klartext.cli", "serve", "--db", str(db), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(proc.stdout.read().decode(errors="replace")[-2000:])


def test_kill_9_under_load_loses_no_acknowledged_decision(demo_copy):
    db = demo_copy  # a private copy: the service may hold and change it
    port = _free_port()
    proc = _start(db, port)
    acked: list[str] = []
    stop = threading.Event()

    def client():
        body = json.dumps(CUSTOMER).encode()
        while not stop.is_set():
            req = urllib.request.Request(f"http://127.0.0.1:{port}/decide", data=body,
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    acked.append(json.loads(r.read())["decision_id"])
            except (OSError, urllib.error.URLError):
                return

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 20
    with DecisionLog.open(db) as log:  # reopening replays the WAL
        con = log.con
        con.register("acked", __import__("pandas").DataFrame({"decision_id": acked}))
        found, cands = con.execute(
            "SELECT count(*), (SELECT count(*) FROM candidates WHERE decision_id IN (SELECT decision_id FROM acked)) "
            "FROM decisions WHERE decision_id IN (SELECT decision_id FROM acked)").fetchall()[0]
        partial = con.execute("SELECT count(*) FROM (SELECT decision_id, count(*) AS n FROM candidates "
                              "GROUP BY ALL HAVING n <> 29)").fetchall()[0][0]
        assert log.verify().ok
    assert found == len(acked) and cands == 29 * len(acked)
    assert partial == 0


def test_an_objection_through_the_service_applies_to_the_next_decision_and_views_are_recorded(client):
    c, db = client
    first = c.post("/decide", json=CUSTOMER).json()
    r = c.post("/objection", json={"customer_id": CUSTOMER["customer_id"], "note": "phone call"})
    assert r.status_code == 200, r.text
    assert r.json()["channels"] is None and CUSTOMER["customer_id"] not in r.text  # answered by pseudonym
    assert c.post("/objection", json={"customer_id": "x", "channels": ["fax"]}).status_code == 422
    after = c.post("/decide", json=CUSTOMER).json()
    with c.app.state.service().log.register() as reg:
        reg.record_review(after["decision_id"], None, "contested", "care", "customer asks for a person")
    rec = c.get(f"/decisions/{after['decision_id']}").json()
    assert [(x["status"], x["reviewer"]) for x in rec["reviews"]] == [("contested", "care")]
    by_action = {x["action_id"]: x for x in rec["candidates"]}
    s = c.app.state.service().strategy
    marketing = [a.id for a in s.actions if a.marketing and CUSTOMER["channel"] in a.channels]
    assert marketing and all(by_action[a]["rule"] == "objection" for a in marketing)
    assert not set(after["chosen_actions"]) & set(marketing)
    firsts = {x["action_id"]: x["rule"] for x in c.get(f"/decisions/{first['decision_id']}").json()["candidates"]}
    assert "objection" not in firsts.values()  # before the objection
    svc = c.app.state.service()
    with svc.log.register(read_only=True) as reg:
        views = reg.access_log()
    newest = views.head(2)  # (a copy of the shared demo log may hold other tests' views)
    assert list(newest["what"]) == ["decision", "decision"] and set(newest["via"]) == {"api"}
    assert list(newest["target"]) == [first["decision_id"], after["decision_id"]]
