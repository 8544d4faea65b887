"""Access: the service requires sign-in beyond loopback, roles decide who reads what, a retry
with an Idempotency-Key logs nothing new (security issue, item 7)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from klartext.access import add_user, check_password, is_loopback, load_users
from klartext.cli import main
from klartext.serve import create_app

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())
PASSWORD = "correct horse battery"


def _basic(name, password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users.txt"
    for name, role in (("vera", "viewer"), ("rita", "reviewer"), ("dirk", "decider"), ("ada", "admin")):
        add_user(path, name, role, PASSWORD)
    add_user(path, "proxy-paul", "reviewer", None)
    return path


def test_passwords_are_stored_as_scrypt_hashes(users):
    text = users.read_text()
    assert PASSWORD not in text and text.count("scrypt$") == 4
    u = load_users(users)
    assert check_password(u["ada"].password_hash, PASSWORD) and not check_password(u["ada"].password_hash, "nope")
    assert u["proxy-paul"].password_hash == "-"


def test_roles_decide_what_each_user_may_do(demo_copy, users):
    with TestClient(create_app(str(demo_copy), users=str(users))) as c:
        assert c.get("/health").status_code == 401
        r = c.post("/decide", json=CUSTOMER)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert r.json() == {"error": "Sign-in required.", "hint": None} or set(r.json()) == {"error", "hint"}
        assert c.post("/decide", json=CUSTOMER, headers=_basic("ada", "wrong password!")).status_code == 401
        r = c.post("/decide", json=CUSTOMER, headers=_basic("dirk"))
        assert r.status_code == 200, r.text
        did = r.json()["decision_id"]
        # a decider decides but reads no logged decision; a viewer sees aggregates only
        assert c.get(f"/decisions/{did}", headers=_basic("dirk")).status_code == 403
        assert c.get(f"/decisions/{did}", headers=_basic("vera")).status_code == 403
        assert c.get("/health", headers=_basic("vera")).status_code == 200
        assert c.post("/decide", json=CUSTOMER, headers=_basic("rita")).status_code == 403
        assert c.get(f"/decisions/{did}", headers=_basic("rita")).status_code == 200
        assert c.get(f"/decisions/{did}", headers=_basic("ada")).status_code == 200
        # proxy-only users have no password to guess
        assert c.get(f"/decisions/{did}", headers=_basic("proxy-paul", "")).status_code == 401


def test_a_trusted_proxy_header_names_the_user(demo_copy, users):
    with TestClient(create_app(str(demo_copy), users=str(users), auth_header="X-Forwarded-User")) as c:
        did = c.post("/decide", json=CUSTOMER, headers=_basic("ada")).json()["decision_id"]
        assert c.get(f"/decisions/{did}", headers={"X-Forwarded-User": "proxy-paul"}).status_code == 200
        r = c.get(f"/decisions/{did}", headers={"X-Forwarded-User": "mallory"})
        assert r.status_code == 403 and "is not in the users file" in r.json()["error"]


def test_an_idempotency_key_makes_a_retry_log_nothing(demo_copy):
    with TestClient(create_app(str(demo_copy))) as c:
        svc = c.app.state.service()
        n0 = svc.log.con.cursor().execute("SELECT count(*) FROM decisions").fetchall()[0][0]
        first = c.post("/decide", json=CUSTOMER, headers={"Idempotency-Key": "order-4711"}).json()
        again = c.post("/decide", json=CUSTOMER, headers={"Idempotency-Key": "order-4711"}).json()
        assert again["decision_id"] == first["decision_id"]
        other = {**CUSTOMER, "channel": "email"}
        r = c.post("/decide", json=other, headers={"Idempotency-Key": "order-4711"})
        assert r.status_code == 422 and r.json()["error"] == "Idempotency-Key 'order-4711' was used for another request."
        svc.writer.wait_loaded()  # (answered once journaled: the count reads the file)
        n1 = svc.log.con.cursor().execute("SELECT count(*) FROM decisions").fetchall()[0][0]
    assert n1 == n0 + 1


def test_serve_and_app_refuse_to_listen_beyond_loopback_without_users(demo_copy):
    for cmd in (["serve", "--db", str(demo_copy), "--host", "0.0.0.0"],
                ["app", "--db", str(demo_copy), "--host", "0.0.0.0"]):
        out = CliRunner().invoke(main, cmd)
        assert out.exit_code == 2, out.output
        assert "reachable from other machines, without authentication." in out.output
        assert "Hint: Give --users FILE" in out.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("")


def test_user_add_from_the_cli(tmp_path):
    path = tmp_path / "u.txt"
    out = CliRunner().invoke(main, ["user", "add", "--file", str(path), "--name", "anna", "--role", "reviewer",
                                    "--password-stdin"], input=PASSWORD + "\n")
    assert out.exit_code == 0 and "anna (reviewer) is in" in out.output
    out = CliRunner().invoke(main, ["user", "add", "--file", str(path), "--name", "bob", "--role", "admin",
                                    "--password-stdin"], input="short\n")
    assert out.exit_code == 2 and "Error: The password is shorter than 12 characters." in out.output
    assert oct(path.stat().st_mode & 0o777) == "0o600"
