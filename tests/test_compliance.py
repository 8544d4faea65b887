"""Compliance workflows: erasure by crypto-shredding, objections, the sealed register."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import copy_log, returning_customer
from decision_log import queries, register, subjects
from decision_log.erasure import erase
from decision_log.replay import replay
from decision_log.store import DecisionLog
from decision_log.writer import decide_and_log
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.scenarios import retail
from explain.api import Explainer
from klartext.cli import main
from klartext.jobs import run_demo


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Path:
    """A 100,000-decision demo log (the acceptance asks for erasure in a log of this size)."""
    path = tmp_path_factory.mktemp("big") / "big.duckdb"
    run_demo(str(path), 100_000, history_per_action=800, explain_sample=300)
    return path


def _files(db: Path) -> dict[str, bytes]:
    """Every file Klartext keeps for a log, by name (the log, its WAL, keys, register)."""
    return {p.name: p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name)
            and p.is_file() and not p.name.endswith(".lock")}


def _aggregates(db: Path) -> dict:
    with DecisionLog.open(db, read_only=True) as log:
        con = log.con.cursor()
        out = {"summary": queries.summary(con), "funnel": queries.funnel(con).to_dict("records"),
               "stages": con.execute("SELECT stage, rule, count(*) FROM candidates GROUP BY ALL ORDER BY ALL").fetchall(),
               # rounded: a parallel sum adds in no fixed order (its last digits vary from run to run)
               "outcomes": con.execute("SELECT outcome, count(*), round(sum(margin), 6), round(sum(revenue), 6) "
                                       "FROM outcomes GROUP BY ALL ORDER BY ALL").fetchall()}
    return out


def test_erasing_a_customer_keeps_the_seal_and_leaves_nothing_readable(big_log, tmp_path):
    db = tmp_path / "log.duckdb"
    copy_log(big_log, db)
    raw, n = returning_customer(db)
    with DecisionLog.open(db, read_only=True) as log:
        pseudo = str(log.pseudonymise([raw])[0])
        rows = log.con.execute("SELECT decision_id, customer, inputs FROM decisions WHERE customer = ? ORDER BY seq",
                               [pseudo]).fetchall()
        ids = [r[0] for r in rows]
        plain = log.open_inputs(ids, [r[1] for r in rows], [r[2] for r in rows])
        key, kid = log.subject_keys.keys([pseudo])[0]
        wrapped = log.subject_keys._wrapped_of(np.array([pseudo], dtype="S32"))[0]
        explained = log.con.execute("SELECT count(*) FROM explanations WHERE decision_id IN (SELECT unnest(?))",
                                    [ids]).fetchall()[0][0]
    assert n >= 2 and len(ids) == n and all(p is not None for p in plain)
    docs = [json.loads(p) for p in plain]
    # what must not be readable afterwards: each decision's CLV as written in its inputs and as a
    # double, its full inputs, the reasons that quoted them, and the key itself
    needles = [key, wrapped]
    for p, d in zip(plain, docs):
        needles += [p.encode(), json.dumps(d["features"]["clv"]).encode(), struct.pack("<d", d["features"]["clv"])]
        needles += [r.encode() for r in (d.get("reasons") or {}).values()]
    before = _aggregates(db)
    result = CliRunner().invoke(main, ["erase", raw, "--db", str(db), "--yes", "--by", "dpo", "--reference", "T-17"])
    assert result.exit_code == 0, result.output
    assert f"{n:,} decision(s) about them" in result.output

    for name, data in _files(db).items():
        for needle in needles:
            assert needle not in data, f"{name} still holds erased data"
    with DecisionLog.open(db, read_only=True) as log:
        res = log.verify()
        assert res.ok, res.problem
        assert any("1 erasures" in note for note in res.notes)
        assert log.open_inputs(ids, [pseudo] * n, [r[2] for r in rows]) == [None] * n
        results = replay(log, ids)
        assert all(not r.replayable and r.erased_at is not None and "erased on" in r.note for r in results)
        e = Explainer(log).explain(ids[0])
        assert e.erased and e.inputs == {} and not e.attributions and "Erased on" in e.notes[0]
        # the rest of the log is untouched: another customer still replays exactly
        other = log.con.execute("SELECT decision_id FROM decisions WHERE customer <> ? AND source = 'klartext' "
                                "ORDER BY seq LIMIT 50", [pseudo]).fetchall()
        assert all(r.reproduced for r in replay(log, [o[0] for o in other]))
        with log.register(read_only=True) as reg:
            erased = reg.erasure_list()
    assert _aggregates(db) == before
    assert explained >= 0
    assert list(erased["customer"]) == [pseudo] and raw not in erased.to_string()
    assert int(erased["decisions"].iloc[0]) == n and erased["reference"].iloc[0] == "T-17"
    assert erased["key_fingerprint"].iloc[0] == kid and all(f'"key":"{kid}"' in r[2] for r in rows)  # the key they name


def test_an_erased_customer_who_comes_back_gets_a_new_key(demo_copy):
    raw, n = returning_customer(demo_copy)
    with DecisionLog.open(demo_copy) as log:
        done = erase(log, raw, "dpo", "cli")
        assert done.decisions == n and done.key_fingerprint
        from klartext.jobs import decide_one

        item = json.loads((Path(__file__).parents[1] / "examples" / "customer.json").read_text())
        batch, _ = decide_one(log, {**item, "customer_id": raw})
        did = str(batch.decision_id[0])
        (r,) = replay(log, [did])
        assert r.reproduced
        old = log.con.execute("SELECT decision_id FROM decisions WHERE customer = ? AND decision_id <> ? LIMIT 1",
                              [done.customer, did]).fetchall()[0][0]
        (r_old,) = replay(log, [old])
        assert not r_old.replayable and r_old.erased_at is not None


def test_a_log_that_stores_inputs_in_clear_refuses_erasure(tmp_path, tiny_engine, tiny_strategy):
    from conftest import tiny_customers

    db = tmp_path / "clear.duckdb"
    with DecisionLog.open(db, seal_inputs=False) as log:
        req = Requests.from_frame(tiny_strategy, tiny_customers(10, seed=2))
        log.append(tiny_engine.decide(req), tiny_strategy)
        raw = str(req.customer_id[0])
        with pytest.raises(Exception, match="in clear"):
            erase(log, raw, "dpo", "cli")
        assert not subjects.is_sealed(log.con.execute("SELECT inputs FROM decisions LIMIT 1").fetchall()[0][0])


def test_the_key_file_is_rewritten_without_the_erased_key(tmp_path):
    keys = subjects.SubjectKeys(tmp_path / "k", b"k" * 32)
    ids = [f"{i:032x}" for i in range(1000)]
    sealed = keys.seal(ids, ids, [f'{{"features":{{"n":{i}}}}}' for i in range(1000)])
    wrapped = keys._wrapped_of(np.array([ids[7]], dtype="S32"))[0]
    assert wrapped in (tmp_path / "k").read_bytes()
    other = subjects.SubjectKeys(tmp_path / "k", b"k" * 32)  # another process's view
    assert other.open(ids[7:9], ids[7:9], sealed[7:9]) == ['{"features":{"n":7}}', '{"features":{"n":8}}']
    assert keys.erase(ids[7]) and keys.erase(ids[7]) is None
    assert wrapped not in (tmp_path / "k").read_bytes() and len(subjects.SubjectKeys(tmp_path / "k", b"k" * 32)) == 999
    assert other.open(ids[7:9], ids[7:9], sealed[7:9]) == [None, '{"features":{"n":8}}']  # it re-reads the file
    with pytest.raises(Exception, match="do not open"):  # a sealed value moved to another decision
        other.open([ids[8]], [ids[9]], [sealed[8]])
    with pytest.raises(Exception, match="does not belong"):
        subjects.SubjectKeys(tmp_path / "k", b"x" * 32).open([ids[8]], [ids[8]], [sealed[8]])


def test_the_customers_keys_are_read_when_a_sealed_value_is_first_opened_not_when_the_log_opens(demo_copy):
    # On 10 million decisions the key file holds millions of customers: reading and sorting them
    # took 6 s of every `DecisionLog.open` (every CLI command, the dashboard's first page).
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert log.seals_inputs and log.subject_keys._read == 0 and not len(log.subject_keys._order)
        did, customer, stored = log.con.execute("SELECT decision_id, customer, inputs FROM decisions LIMIT 1").fetchall()[0]
        assert json.loads(log.open_inputs([did], [customer], [stored])[0])["features"]
        assert log.subject_keys._read > len(subjects.HEADER) and len(log.subject_keys) > 100
    with DecisionLog.open(demo_copy) as log:  # a writer (the service) reads them before its first decision
        assert log.subject_keys._read > len(subjects.HEADER)


def test_the_sorting_of_the_customers_keys_is_the_stable_sort_of_their_ids():
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, (60_000, 16), dtype=np.uint8)
    raw[:300, :3] = 7  # ids that share their first 8 hex digits (a run sorted by the whole id)
    raw[1000:1100] = raw[2000:2100]  # equal ids: in their order in the file
    raw[5000:5003, :4] = 0  # and at the very start
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.empty((len(raw), 32), dtype=np.uint8)
    text[:, 0::2], text[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    ids = text.view("S32").ravel()
    heads, order = subjects._index(text)
    assert (order == np.argsort(ids, kind="stable")).all()
    assert (heads[1:] >= heads[:-1]).all() and heads[0] == int.from_bytes(text[order[0], :8].tobytes(), "big")
    assert (subjects._index(text[:50])[1] == np.argsort(ids[:50], kind="stable")).all()


def test_an_objection_stops_every_later_marketing_action_over_a_month(demo_copy):
    raw, _ = returning_customer(demo_copy)
    other, _ = returning_customer_other(demo_copy, raw)
    runner = CliRunner()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        strategy = log.load_strategy(log.latest_strategy_version())
        models = log.latest_models_for(strategy)
        before = log.con.execute("SELECT count(*) FROM candidates c JOIN decisions d USING (decision_id) "
                                 "WHERE d.customer = ? AND c.rule = 'objection'",
                                 [str(log.pseudonymise([raw])[0])]).fetchall()[0][0]
    assert before == 0
    assert runner.invoke(main, ["object", raw, "--db", str(demo_copy), "--by", "service-desk"]).exit_code == 0
    r = runner.invoke(main, ["object", other, "--db", str(demo_copy), "--channels", "email", "--by", "service-desk"])
    assert r.exit_code == 0, r.output
    # a month of interactions for both, every channel, every day
    people = retail.generate_customers(2 * 30 * len(strategy.channels), seed=5)
    frame, contacts, rej, days = retail.generate_interactions(people, strategy, seed=5)
    n = len(frame)
    frame = frame.assign(customer_id=[raw if i % 2 == 0 else other for i in range(n)],
                         channel=[strategy.channel_ids[(i // 2) % len(strategy.channels)] for i in range(n)])
    req = Requests.from_frame(strategy, frame, contacts=contacts, rejections=rej, days_since_rejection=days)
    day_us = 86_400_000_000
    start = (pd.Timestamp.now(tz="UTC").normalize() + pd.Timedelta(days=1)).value // 1000
    ts = start + (np.arange(n) // (2 * len(strategy.channels))) * day_us
    with DecisionLog.open(demo_copy) as log:
        batches = decide_and_log(log, Engine(strategy, models), req, ts, chunk=40)
        made = [str(d) for b in batches for d in b.decision_id]
        p_raw, p_other = (str(x) for x in log.pseudonymise([raw, other]))
        cells = log.con.execute(
            "SELECT d.customer, d.channel, c.action_id, c.stage, c.rule, c.selected FROM candidates c "
            "JOIN decisions d USING (decision_id) WHERE d.decision_id IN (SELECT unnest(?))", [made]).df()
        assert all(r.reproduced for r in replay(log, made[:40:2]))  # the objection is part of the inputs
        assert log.verify().ok
    marketing = {a.id for a in strategy.actions if a.marketing}
    assert marketing and marketing != set(strategy.action_ids)
    mine = cells[cells["customer"] == p_raw]
    assert mine["customer"].count() == (n // 2) * len(strategy.actions)
    m = mine[mine["action_id"].isin(marketing)]
    assert (m["stage"] == "eligibility").all() and not m["selected"].any()
    assert set(m["rule"]) == {"objection", "available_on_channel"}  # removed, unless not offered on the channel
    assert not (mine[~mine["action_id"].isin(marketing)]["rule"] == "objection").any()  # service messages stay
    theirs = cells[(cells["customer"] == p_other) & cells["action_id"].isin(marketing)]
    assert theirs[theirs["channel"] == "email"]["rule"].isin(["objection", "available_on_channel"]).all()
    assert (theirs[theirs["channel"] == "email"]["rule"] == "objection").any()
    assert not (theirs[theirs["channel"] != "email"]["rule"] == "objection").any()
    with DecisionLog.open(demo_copy, read_only=True) as log, log.register(read_only=True) as reg:
        periods = reg.objection_periods()
        marketing_by_version = {strategy.version: marketing}
        assert len(periods) == 2 and queries.objection_violations(log.con, periods, marketing_by_version).empty
        # the check is real: the customer's own marketing decisions before the objection are found once
        # the objection is dated back to before them
        early = [(c, ch, pd.Timestamp("2020-01-01", tz="UTC").to_pydatetime(), u) for c, ch, _, u in periods]
        assert not queries.objection_violations(log.con, early, marketing_by_version).empty
    # withdrawn: marketing comes back
    assert runner.invoke(main, ["object", raw, "--db", str(demo_copy), "--withdraw", "--by", "x"]).exit_code == 0
    with DecisionLog.open(demo_copy) as log:
        assert p_raw not in log.standing_objections()


def returning_customer_other(db: Path, not_this: str) -> tuple[str, int]:
    with DecisionLog.open(db, read_only=True) as log:
        raw = [f"C{i:08d}" for i in range(201, 400)]
        pseudo = list(log.pseudonymise(raw))
        counts = dict(log.con.execute("SELECT customer, count(*) FROM decisions WHERE customer IN "
                                      "(SELECT unnest(?::VARCHAR[])) GROUP BY 1", [pseudo]).fetchall())
    n, cust = max((counts.get(p, 0), r) for p, r in zip(pseudo, raw) if r != not_this)
    return cust, n


def test_reviews_and_accesses_are_sealed(demo_copy):
    runner = CliRunner()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        did, cust = log.con.execute("SELECT decision_id, customer FROM decisions LIMIT 1").fetchall()[0]
        with log.register() as reg:
            reg.record_review(did, cust, "contested", "customer-care", "customer disputes the payment terms")
            reg.record_review(did, cust, "upheld", "reviewer-2", "terms were correct")
    assert runner.invoke(main, ["explain", did, "--db", str(demo_copy)]).exit_code == 0
    out = runner.invoke(main, ["access-log", "--db", str(demo_copy), "--json"])
    rows = json.loads(out.output)
    assert [r["what"] for r in rows][:2] == ["access_log", "decision"] and rows[1]["target"] == did
    with DecisionLog.open(demo_copy, read_only=True) as log:
        res = log.verify()
        assert res.ok and any("2 reviews" in x for x in res.notes)
    path = register.path_of(str(demo_copy))
    for tamper, table in (("UPDATE reviews SET status = 'overridden' WHERE status = 'upheld'", "reviews"),
                          ("DELETE FROM access WHERE what = 'decision'", "access")):
        saved = path.read_bytes()
        con = duckdb.connect(str(path))
        con.execute(tamper)
        con.close()
        with DecisionLog.open(demo_copy, read_only=True) as log:
            res = log.verify()
        assert not res.ok and res.table.startswith(table), (res.table, res.problem)
        r = runner.invoke(main, ["verify", "--db", str(demo_copy)])
        assert r.exit_code == 1 and "compliance register" in r.output
        path.write_bytes(saved)
        Path(str(path) + ".wal").unlink(missing_ok=True)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_customers_own_explanation_in_both_languages(demo_copy, tmp_path, lang):
    """Art. 15(1)(h) / AI Act Art. 86: rendered to pages (pdftoppm) and read back (pdftotext)."""
    import shutil
    import subprocess

    if not shutil.which("pdftotext") or not shutil.which("pdftoppm"):
        pytest.skip("poppler-utils (pdftotext, pdftoppm) is not installed")
    raw, n = returning_customer(demo_copy)
    runner = CliRunner()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        first = log.con.execute("SELECT decision_id FROM decisions WHERE customer = ? ORDER BY ts LIMIT 1",
                                [str(log.pseudonymise([raw])[0])]).fetchall()[0][0]
    assert runner.invoke(main, ["explain", first, "--db", str(demo_copy)]).exit_code == 0  # someone looked
    out = tmp_path / f"subject_{lang}.pdf"
    r = runner.invoke(main, ["subject", raw, "--db", str(demo_copy), "--out", str(out), "--lang", lang,
                             "--contact", "datenschutz@example.de", "--by", "service-desk"])
    assert r.exit_code == 0, r.output
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    pages = subprocess.run(["pdftoppm", "-r", "40", "-png", str(out), str(tmp_path / "page")], check=True)
    assert pages.returncode == 0 and len(list(tmp_path.glob("page-*.png"))) >= 1
    words = {"de": ["Ihre persönliche Auskunft", f"Unsere Entscheidungen über Sie ({n})", "Die Daten, die wir verwendet",
                    "Werbung widersprechen", "Art. 21 DSGVO", "einen Menschen verlangen", "Art. 22 Abs. 3 DSGVO",
                    "Wer in unserem Unternehmen Ihre Daten angesehen hat", "diese Auskunft",
                    "eine unserer Entscheidungen über Sie", "Kontakt: datenschutz@example.de"],
             "en": ["Your personal explanation", f"Our choices about you ({n})", "The data we used",
                    "Object to marketing", "GDPR Art. 21", "ask for a person", "GDPR Art. 22(3)",
                    "Who at our company looked at your data", "this explanation", "one of our choices about you"]}[lang]
    for w in words:
        assert w in flat, w
    assert "log-odds" not in flat and "Log-Odds" not in flat
    assert ("erhöhte die Chance" if lang == "de" else "raised the chance") in flat  # the reasons, in plain words
    assert "Customer lifetime value" in flat  # the data used, with its value
    with DecisionLog.open(demo_copy, read_only=True) as log, log.register(read_only=True) as reg:
        kinds = list(reg.access_log()["what"])
    assert kinds[0] == "subject_export"


def test_the_compliance_page_queues_contests_samples_a_week_and_shows_the_access_log(demo_copy, monkeypatch):
    from test_app import ok, page

    runner = CliRunner()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        did, other = [r[0] for r in log.con.execute("SELECT decision_id FROM decisions ORDER BY seq LIMIT 2").fetchall()]
    r = runner.invoke(main, ["review", did, "--db", str(demo_copy), "--status", "contested", "--by", "care",
                             "--comment", "customer disputes the voucher"])
    assert r.exit_code == 0, r.output
    assert did in runner.invoke(main, ["review", "--db", str(demo_copy)]).output  # the CLI's queue
    at = page("pages/compliance.py", demo_copy, monkeypatch)
    queue = at.dataframe[0].value
    assert list(queue["decision_id"]) == [did] and queue["comment"].iloc[0] == "customer disputes the voucher"
    at.text_input(key="review_id").set_value(did)
    at.selectbox(key="review_status").set_value("upheld")
    at.text_area(key="review_comment").set_value("the voucher rule was applied correctly")
    ok(at.button[0].click().run())
    assert at.success[0].value.startswith(f"Decision {did} marked “upheld”")
    ok(at.selectbox(key="queue_status").set_value("upheld").run())
    assert list(at.dataframe[0].value["decision_id"]) == [did]
    assert any("random sample of" in m.value and "the same sample for every reviewer" in m.value for m in at.markdown)
    with DecisionLog.open(demo_copy, read_only=True) as log:
        with log.register(read_only=True) as reg:
            trail = list(reg.reviews(did)["status"])
            kinds = set(reg.access_log()["what"])
        assert log.verify().ok
    assert trail == ["contested", "upheld"] and {"review", "access_log"} <= kinds


def test_an_erased_decision_on_the_replay_page_and_in_the_cli(demo_copy, monkeypatch):
    from test_app import ok, page

    raw, _ = returning_customer(demo_copy)
    with DecisionLog.open(demo_copy, read_only=True) as log:
        done = erase(log, raw, "dpo", "cli", "T-9")
        did = log.con.execute("SELECT decision_id FROM decisions WHERE customer = ? LIMIT 1",
                              [done.customer]).fetchall()[0][0]
    monkeypatch.setenv("KLARTEXT_LANG", "de")
    at = page("pages/replay.py", demo_copy, monkeypatch)
    ok(at.text_input(key="q_id").set_value(did).run())
    assert at.info[0].value.startswith(f"Gelöscht am {done.erased_at:%Y-%m-%d} auf Wunsch")
    assert not at.warning  # no technical notes in place of the banner
    r = CliRunner().invoke(main, ["replay", did, "--db", str(demo_copy), "--lang", "de"])
    assert r.exit_code == 1 and "Gelöscht am" in r.output


def test_a_key_file_being_created_reads_as_empty_and_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "log.duckdb.subject-keys"
    path.write_bytes(subjects.HEADER[:5])  # another process is writing its first record right now
    assert len(subjects.SubjectKeys(path, b"k" * 32)) == 0
    path.write_bytes(b"PK\x03\x04 not a key file")
    with pytest.raises(Exception, match="is not a Klartext key file"):
        subjects.SubjectKeys(path, b"k" * 32)


def test_compliance_commands_refuse_bad_input_naming_the_value_and_the_next_step(demo_copy, tmp_path):
    runner = CliRunner()
    cases = [
        (["subject", "C00000001", "--out", str(tmp_path / "a.docx")],
         "Error: --out '{}': unknown file type '.docx'.\nHint: Name the file .html (a printable page), .pdf or .json."
         .format(tmp_path / "a.docx")),
        (["subject", "C00000001", "--out", str(tmp_path / "a.pdf"), "--from", "yesterday"],
         "Error: --from 'yesterday' is not a date.\nHint: Write it as YYYY-MM-DD, e.g. 2026-11-01."),
        (["review", "latest", "--by", "x"],
         "Error: --status is missing.\nHint: Mark the decision reviewed, contested, upheld or overridden."),
    ]
    for args, message in cases:
        r = runner.invoke(main, [*args, "--db", str(demo_copy)])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
    r = runner.invoke(main, ["object", "C00000001", "--db", str(demo_copy), "--channels", "fax", "--by", "x"])
    assert r.exit_code == 2 and "Error: --channels: 'fax' is not a channel of this log's strategies." in r.output
    assert "Hint: Channels: " in r.output
    assert not (tmp_path / "a.docx").exists() and not (tmp_path / "a.pdf").exists()
    with DecisionLog.open(demo_copy, read_only=True) as log, log.register(read_only=True) as reg:
        assert reg is None or reg.objections() == {}  # nothing half-written


def test_the_compact_inputs_are_the_same_written_by_python_or_by_duckdb(tiny_engine, tiny_strategy):
    from conftest import tiny_customers
    from decision_log import rows as R

    req = Requests.from_frame(tiny_strategy, tiny_customers(200, seed=3))
    batch = tiny_engine.decide(req)
    dec = R.engine_rows(batch, tiny_strategy, np.asarray(batch.requests.customer_id, dtype=object), "klartext")[0]
    by_python, by_duckdb = R._compact_inputs(dec, tiny_strategy), R._compact_by_duckdb(dec, tiny_strategy)
    assert [json.loads(x) for x in by_python] == [json.loads(x) for x in by_duckdb]
    clear = R._query(R._INPUTS_JSON, None, _k_dec=dec).column("inputs").to_pylist()
    assert [json.loads(R.expand(x, tiny_strategy)) for x in by_duckdb] == [json.loads(x) for x in clear]


def test_the_key_index_finds_every_customer_through_merges_shared_heads_and_erasures(tmp_path, monkeypatch):
    # The key file's records stay as read; an index sorted by each pseudonym's first 8 bytes points
    # into them. Ids that share those bytes, keys added in small batches and merged, and erasures.
    monkeypatch.setattr(subjects, "_MERGE_AT", 7)
    rng = np.random.default_rng(3)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

    def ids(n, head=None):
        raw = rng.integers(0, 16, (n, 32), dtype=np.uint8)
        text = digits[raw]
        if head is not None:
            text[:, :8] = np.frombuffer(head, dtype=np.uint8)
        return [t.tobytes().decode() for t in text]

    keys = subjects.SubjectKeys(tmp_path / "log.duckdb.subject-keys", b"k" * 32)
    made = {}
    for batch in (ids(5), ids(30, b"abcdef01"), ids(3), ids(12, b"00000000"), ids(40), ids(9, b"abcdef01")):
        for pid, k in zip(batch, keys.keys(batch, create=True)):
            made[pid] = k
    erased = list(made)[::9]
    for pid in erased:
        assert keys.erase(pid) == made[pid][1]
    everyone = list(made) + ids(20) + ids(4, b"abcdef01")  # and some who never had a key
    for reader in (keys, subjects.SubjectKeys(tmp_path / "log.duckdb.subject-keys", b"k" * 32)):  # this one reads the file
        got = reader.keys(everyone)
        assert got == [None if pid in erased else made.get(pid) for pid in everyone]
        assert len(reader) == len(made) - len(erased)
