"""No raw customer identifier ever reaches a log file's bytes: not after an import, a killed
import, the service or the demo (security issue, item 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from decision_log.importers import import_file
from decision_log.store import DecisionLog
from klartext.serve import create_app

ROOT = Path(__file__).resolve().parent.parent


def _generic(n_decisions: int, actions: int = 3) -> pd.DataFrame:
    """A generic-format export whose customers have unmistakable raw ids."""
    d = np.repeat(np.arange(n_decisions), actions)
    return pd.DataFrame({
        "decision_id": [f"D{i}" for i in d],
        "ts": "2026-01-05 10:00:00",
        "customer": [f"RAWCUST{i:07d}X" for i in d],
        "channel": "web",
        "action_id": [f"a{j}" for j in np.tile(np.arange(actions), n_decisions)],
        "stage": "ranked",
        "priority": np.tile(np.arange(actions, 0, -1), n_decisions).astype(float),
        "rank": np.tile(np.arange(1, actions + 1), n_decisions),
    })


def _file_bytes(db: Path) -> bytes:
    """Every byte Klartext left beside the log: the file, its WAL and DuckDB's spill folder."""
    out = b""
    for p in [db, Path(str(db) + ".wal")] + sorted(Path(str(db) + ".tmp").glob("*")):
        if p.is_file():
            out += p.read_bytes()
    return out


def test_an_import_leaves_no_raw_id_in_the_file(tmp_path):
    src = tmp_path / "export.csv"
    _generic(30_000).to_csv(src, index=False)
    db = tmp_path / "imp.duckdb"
    with DecisionLog.open(db) as log:
        rep = import_file(log, "generic", str(src))
        assert rep.decisions_added == 30_000
        tables = {r[0] for r in log.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert not any(t.startswith("_k_") for t in tables)
    data = _file_bytes(db)
    assert b"RAWCUST" not in data
    with DecisionLog.open(db, read_only=True) as log:  # the pseudonyms are the log's, as for any decision
        stored = log.con.execute("SELECT customer FROM decisions WHERE decision_id = 'generic:D7'").fetchall()[0][0]
        assert stored == log.pseudonymise(["RAWCUST0000007X"])[0]


def test_a_killed_import_leaves_no_table_and_no_raw_id(tmp_path):
    src = tmp_path / "big.csv"
    _generic(200_000, actions=5).to_csv(src, index=False)
    db = tmp_path / "killed.duckdb"
    with DecisionLog.open(db):
        pass  # the log and its key exist before the import starts
    proc = subprocess.Popen([sys.executable, "-m", "klartext.cli", "import", "--db", str(db), "--format", "generic",
                             str(src)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # kill it once it is reading the file
        line = proc.stderr.readline()
        if b"Importing" in line or b"%" in line:
            break
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with DecisionLog.open(db) as log:
        tables = {r[0] for r in log.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert log.verify().ok
    assert not any(t.startswith("_k_") for t in tables)
    assert b"RAWCUST" not in _file_bytes(db)


def test_the_service_and_the_demo_leave_no_raw_id(demo_copy, demo_log):
    item = {**json.loads((ROOT / "examples" / "customer.json").read_text()), "customer_id": "RAWCUST-SERVE-4711"}
    with TestClient(create_app(str(demo_copy))) as c:
        assert c.post("/decide", json=item).status_code == 200
    assert b"RAWCUST-SERVE-4711" not in _file_bytes(demo_copy)
    # the demo's customers are "C" + 8 digits; none of these may be in its log's bytes
    data = _file_bytes(demo_log)
    assert all(c.encode() not in data for c in ("C00000017", "C00001234", "C00001999"))
