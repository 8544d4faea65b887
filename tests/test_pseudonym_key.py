"""One pseudonym key format, and a log never silently gets a new key (security issue, item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from decision_log.store import DecisionLog
from decisioning.errors import LogError
from klartext.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_the_variable_and_the_key_file_give_the_same_pseudonym(demo_copy, monkeypatch):
    with DecisionLog.open(demo_copy, read_only=True) as log:
        from_file = log.pseudonymise(["C00000042"])[0]
    monkeypatch.setenv("KLARTEXT_PSEUDONYM_KEY", Path(str(demo_copy) + ".key").read_text())
    Path(str(demo_copy) + ".key").unlink()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert log.pseudonymise(["C00000042"])[0] == from_file


def test_a_key_that_is_not_hex_is_refused_with_its_format(demo_copy, monkeypatch):
    monkeypatch.setenv("KLARTEXT_PSEUDONYM_KEY", "my secret passphrase")
    with pytest.raises(LogError) as err:
        DecisionLog.open(demo_copy, read_only=True)
    assert err.value.message == ("$KLARTEXT_PSEUDONYM_KEY is not a pseudonym key: expected at least 32 hex digits, "
                                 "got 20 characters.")


def test_a_lost_key_file_is_refused_not_replaced(demo_copy, tmp_path):
    key = Path(str(demo_copy) + ".key")
    key.unlink()
    item = tmp_path / "c.json"
    item.write_text(json.dumps(json.loads((ROOT / "examples" / "customer.json").read_text())))
    with DecisionLog.open(demo_copy, read_only=True) as log:
        n = log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
    out = CliRunner().invoke(main, ["decide", "--db", str(demo_copy), "--input", str(item)])
    assert out.exit_code != 0
    assert f"Error: The pseudonym key of the log {str(demo_copy)!r} is missing" in out.output
    assert f"Restore {demo_copy}.key from your backup" in out.output
    assert not key.exists()  # no new key was made
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == n


def test_another_logs_key_is_refused(demo_copy, tmp_path):
    with DecisionLog.open(tmp_path / "other.duckdb"):
        pass
    Path(str(demo_copy) + ".key").write_text(Path(str(tmp_path / "other.duckdb") + ".key").read_text())
    with pytest.raises(LogError) as err:
        DecisionLog.open(demo_copy)
    assert "is not the key this log was written with" in err.value.message


def test_a_new_log_gets_a_key_and_records_its_id(tmp_path):
    db = tmp_path / "new.duckdb"
    with DecisionLog.open(db) as log:
        kid = log.con.execute("SELECT value FROM meta WHERE key = 'key_id'").fetchall()[0][0]
    assert len(kid) == 16 and Path(str(db) + ".key").exists()
    assert kid not in Path(str(db) + ".key").read_text()
