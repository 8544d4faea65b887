"""The service's journal (decision_log.journal): an answer is sent once its group is durable
in the journal; the DuckDB file gets it behind the answer, and after a crash the next open
for writing loads what the file lacks.  Each crash here is a copy of the files as they were
on disk while the load was held back (what `kill -9` or a power cut leaves)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from decision_log import journal, writer
from decision_log.store import DecisionLog
from decision_log.writer import Writer
from decisioning.engine import Engine
from decisioning.errors import LogError
from decisioning.inputs import Requests
from decisioning.scenarios import retail
from klartext.serve import create_app
from tests.conftest import copy_log

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())


def _count(db: Path, ids: list[str]) -> tuple[int, int]:
    with DecisionLog.open(db, read_only=True) as log:
        return log.con.execute(
            "SELECT (SELECT count(*) FROM decisions WHERE decision_id IN (SELECT unnest($i))), "
            "(SELECT count(*) FROM candidates WHERE decision_id IN (SELECT unnest($i)))", {"i": ids}).fetchall()[0]


def _crash_image(db: Path, groups: int = 3, size: int = 4) -> tuple[Path, list[list[str]]]:
    """Acknowledge ``groups`` groups through a journaling writer whose loads are held back,
    copy the log's files as they are on disk then (the crash), let the load go on; returns
    the copy and the groups' decision ids."""
    crashed = db.parent / "crashed" / db.name
    crashed.parent.mkdir()
    strategy = retail.load_demo_strategy()
    log = DecisionLog.open(db)
    hold = threading.Event()
    insert = log.insert_chained

    def held(batches):
        hold.wait(30)
        return insert(batches)

    log.insert_chained = held
    try:
        engine = Engine(strategy, log.latest_models_for(strategy))
        w = Writer(log, journal=True)
        ids = []
        for g in range(groups):
            people = [{**CUSTOMER, "customer_id": f"J{g:02d}{k:02d}"} for k in range(size)]
            batch = engine.decide(Requests.from_dicts(strategy, people))
            assert w.append(batch, strategy).result(timeout=30) == size  # acknowledged
            ids.append([str(d) for d in batch.decision_id])
        copy_log(db, crashed)
        for suffix in (".wal", ".journal"):
            if Path(f"{db}{suffix}").exists():
                shutil.copy(f"{db}{suffix}", f"{crashed}{suffix}")
        hold.set()
        w.close()
    finally:
        hold.set()
        log.close()
    assert not journal.path_of(db).exists()  # everything loaded: the journal is removed
    assert _count(db, sum(ids, [])) == (groups * size, groups * size * 29)
    return crashed, ids


def test_acknowledged_decisions_not_yet_loaded_are_in_the_log_after_a_crash(demo_copy):
    crashed, ids = _crash_image(demo_copy)
    every = sum(ids, [])
    assert _count(crashed, every) == (0, 0)  # the file alone lacks them: they were only journaled
    with DecisionLog.open(crashed, read_only=True) as log:  # a reader is told they wait
        res = log.verify()
    assert res.ok and any(n.startswith("12 acknowledged decision(s) of a service that stopped before loading them "
                                       "wait in copy.duckdb.journal") for n in res.notes), res.notes
    with DecisionLog.open(crashed) as log:  # the next open for writing loads them
        assert log.verify().ok
    assert _count(crashed, every) == (len(every), 29 * len(every))
    assert not journal.path_of(crashed).exists()
    with DecisionLog.open(crashed) as log:  # and nothing twice
        assert log.con.execute("SELECT count(*) FROM decisions WHERE decision_id IN (SELECT unnest(?))",
                               [every]).fetchall()[0][0] == len(every)


def test_a_frame_cut_short_by_the_crash_is_dropped_and_the_rest_loaded(demo_copy):
    crashed, ids = _crash_image(demo_copy)
    j = journal.path_of(crashed)
    data = j.read_bytes()
    j.write_bytes(data[:-100])  # the last group's frame torn mid-write (it was never acknowledged)
    with DecisionLog.open(crashed) as log:
        assert log.verify().ok
    assert _count(crashed, ids[0] + ids[1])[0] == 8
    assert _count(crashed, ids[2]) == (0, 0)


def test_a_changed_frame_stops_the_open_and_loads_nothing(demo_copy):
    crashed, ids = _crash_image(demo_copy)
    j = journal.path_of(crashed)
    data = bytearray(j.read_bytes())
    data[200] ^= 1  # inside the first frame's body, two whole frames after it
    j.write_bytes(bytes(data))
    with pytest.raises(LogError, match=r"journal .*at byte 0 holds a frame that does not match its checksum"):
        DecisionLog.open(crashed)
    with DecisionLog.open(crashed, read_only=True) as log:
        res = log.verify()
    assert not res.ok and res.table == "journal" and "does not match its checksum" in res.problem
    assert _count(crashed, sum(ids, [])) == (0, 0)
    assert j.exists()  # kept to be examined


def test_a_journal_that_does_not_continue_the_file_is_refused(demo_copy, tmp_path):
    crashed, ids = _crash_image(demo_copy)
    j = journal.path_of(crashed)
    aside = tmp_path / "aside.journal"
    j.rename(aside)
    strategy = retail.load_demo_strategy()
    with DecisionLog.open(crashed) as log:  # another decision logged meanwhile, without the journal
        log.append(Engine(strategy, log.latest_models_for(strategy)).decide(
            Requests.from_dicts(strategy, [CUSTOMER])), strategy)
    aside.rename(j)
    with pytest.raises(LogError, match="does not continue the log's file"):
        DecisionLog.open(crashed)
    assert _count(crashed, sum(ids, [])) == (0, 0)


def test_the_service_reads_what_it_answered_before_it_is_loaded(demo_copy, monkeypatch):
    """The contact history of the customer's next request and a decision's record include
    what was answered a moment ago, however long the writer gathers before it loads."""
    monkeypatch.setattr(writer, "LOAD_EVERY_S", 20.0)
    email = {**CUSTOMER, "channel": "email"}  # no contacts given: counted from the log
    with TestClient(create_app(str(demo_copy))) as c:
        t = time.perf_counter()
        first = c.post("/decide", json=email).json()
        second = c.post("/decide", json=email).json()
        rec = [c.get(f"/decisions/{d['decision_id']}") for d in (first, second)]
        assert time.perf_counter() - t < 10  # the readers hurried the load; it did not wait 20 s
    assert [r.status_code for r in rec] == [200, 200] and len(rec[1].json()["candidates"]) == 29
    counted = [r.json()["inputs"]["contacts"].get("email", 0) for r in rec]
    assert counted[1] == counted[0] + (1 if first["chosen_actions"] else 0)


def test_a_single_client_does_not_wait_for_a_group_that_is_not_coming(demo_copy):
    """The decide thread gathers a group for up to max_wait_ms, but once it has as many
    requests as the recent groups had it goes: one client in a loop waited the whole window
    on every request."""
    with TestClient(create_app(str(demo_copy), max_wait_ms=400)) as c:
        c.post("/decide", json=CUSTOMER)  # the first group waits the window (no groups seen yet)
        t = time.perf_counter()
        for k in range(5):
            assert c.post("/decide", json={**CUSTOMER, "customer_id": f"G{k}"}).status_code == 200
        took = time.perf_counter() - t
    assert took < 1.0, f"5 requests one after the other took {took:.2f} s (each waited the 0.4 s window)"


def _decided(log, strategy, tag: str, n: int = 3):
    engine = Engine(strategy, log.latest_models_for(strategy))
    return engine.decide(Requests.from_dicts(strategy, [{**CUSTOMER, "customer_id": f"{tag}{k}"} for k in range(n)]))


def test_a_load_that_fails_stops_the_answers_and_keeps_the_journal(demo_copy):
    """A disk that refuses the DuckDB insert: what was answered stays in the journal, every
    later request is refused with the reason, and the next open loads it."""
    strategy = retail.load_demo_strategy()
    log = DecisionLog.open(demo_copy)

    def full(_batches):
        raise LogError("Writing to the log failed: No space left on device", "Free some space.")

    log.insert_chained = full
    w = Writer(log, journal=True)
    first = _decided(log, strategy, "F")
    assert w.append(first, strategy).result(timeout=30) == 3  # journaled: answered
    with pytest.raises(LogError, match="safe in the journal"):
        w.wait_loaded()
    with pytest.raises(LogError, match="No space left on device"):
        w.append(_decided(log, strategy, "G"), strategy).result(timeout=30)
    w.close()
    log.close()
    assert journal.path_of(demo_copy).exists()
    with DecisionLog.open(demo_copy) as again:
        assert again.verify().ok
    assert _count(demo_copy, [str(d) for d in first.decision_id]) == (3, 87)


def test_the_journal_is_emptied_once_everything_in_it_is_loaded(demo_copy, monkeypatch):
    monkeypatch.setattr(journal, "TRUNCATE_AT", 1)
    strategy = retail.load_demo_strategy()
    with DecisionLog.open(demo_copy) as log:
        w = Writer(log, journal=True)
        for g in range(3):
            w.append(_decided(log, strategy, f"T{g}"), strategy).result(timeout=30)
            w.wait_loaded()
            assert journal.path_of(demo_copy).stat().st_size == 0  # loaded: emptied
        w.close()
        assert log.verify().ok
    assert not journal.path_of(demo_copy).exists()


def test_a_service_whose_load_fails_says_so_in_health_and_refuses_new_decisions(demo_copy):
    with TestClient(create_app(str(demo_copy))) as c:
        assert c.get("/health").json()["journal"]["waiting"] == 0
        svc = c.app.state.service()

        def full(_batches):
            raise LogError("Writing to the log failed: No space left on device", "Free some space.")

        svc.log.insert_chained = full
        first = c.post("/decide", json=CUSTOMER)
        assert first.status_code == 200  # journaled before the load failed: answered
        time.sleep(0.2)  # (the load is tried within 50 ms)
        h = c.get("/health")
        assert h.status_code == 503 and "No space left on device" in h.json()["error"]
        assert "safe in the journal" in h.json()["hint"]
        r = c.post("/decide", json=CUSTOMER)
        assert r.status_code == 503 and "safe in the journal" in r.json()["hint"]
    with DecisionLog.open(demo_copy) as log:  # the next open loads the answered decision
        assert log.con.execute("SELECT count(*) FROM decisions WHERE decision_id = ?",
                               [first.json()["decision_id"]]).fetchall()[0][0] == 1
        assert log.verify().ok


def test_a_group_the_journal_could_not_take_is_refused_and_the_next_one_goes_on(demo_copy):
    strategy = retail.load_demo_strategy()
    with DecisionLog.open(demo_copy) as log:
        w = Writer(log, journal=True)
        append, calls = w.journal.append, []

        def once_full(c):
            calls.append(c.n)
            if len(calls) == 1:
                raise OSError(28, "No space left on device")
            append(c)

        w.journal.append = once_full
        lost, kept = _decided(log, strategy, "L"), _decided(log, strategy, "K")
        with pytest.raises(OSError, match="No space left"):
            w.append(lost, strategy).result(timeout=30)  # not acknowledged
        t = time.perf_counter()
        w.wait_loaded(timeout=10)  # nothing acknowledged waits: a reader goes on at once
        assert time.perf_counter() - t < 5
        assert w.append(kept, strategy).result(timeout=30) == 3
        w.close()
        assert log.verify().ok
    assert _count(demo_copy, [str(d) for d in lost.decision_id]) == (0, 0)
    assert _count(demo_copy, [str(d) for d in kept.decision_id]) == (3, 87)


def test_a_crafted_frame_with_a_valid_checksum_is_refused_by_name(demo_copy):
    """A frame rewritten with its checksum recomputed, whose header names no chain position:
    a refusal that names the journal and the byte, not a TypeError."""
    import hashlib

    crashed, ids = _crash_image(demo_copy)
    j = journal.path_of(crashed)
    data = j.read_bytes()
    _magic, length, _digest = journal._HEAD.unpack_from(data, 0)
    body = data[journal._HEAD.size: journal._HEAD.size + length]
    (n,) = journal._LEN.unpack_from(body, 0)
    header = json.loads(body[8:8 + n])
    header["head"] = ["x", header["head"][1]]
    new_header = json.dumps(header).encode()
    new_body = journal._LEN.pack(len(new_header)) + new_header + body[8 + n:]
    j.write_bytes(journal._HEAD.pack(journal.MAGIC, len(new_body), hashlib.sha256(new_body).digest()) + new_body
                  + data[journal._HEAD.size + length:])
    with pytest.raises(LogError) as err:
        DecisionLog.open(crashed)
    assert err.value.message == (f"The journal {j} at byte 0 holds a frame that cannot be read "
                                 "(a chain position ['x', " + repr(header["head"][1]).replace('"', "'") + "] is not (seq, hash)).")
    assert err.value.hint == "Move the journal aside to examine it; the log's file itself is intact."
    assert _count(crashed, sum(ids, [])) == (0, 0)
