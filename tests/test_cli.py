"""The CLI: exact messages users see, exit codes, and nothing written on bad input."""

import json

import duckdb
import pytest
from click.testing import CliRunner

from klartext.cli import main

EXAMPLE = json.load(open("examples/customer.json"))


def run(*args):
    return CliRunner().invoke(main, list(args))


def count(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
    finally:
        con.close()


def write(tmp_path, obj, name="in.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(p)


def test_decide_logs_one_decision_and_prints_it(demo_copy, tmp_path):
    before = count(demo_copy)
    res = run("decide", "--db", str(demo_copy), "--input", write(tmp_path, EXAMPLE))
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["channel"] == "web" and len(out["candidates"]) == 29
    pay_later = next(c for c in out["candidates"] if c["action_id"] == "pay_later_30")
    assert pay_later["reason"] == "suitability/no_credit_in_arrears: arrears_days=45 > 0"
    assert count(demo_copy) == before + 1
    replay = run("replay", "--db", str(demo_copy), out["decision_id"])
    assert replay.exit_code == 0
    assert replay.output.startswith(f"Reproduced {out['decision_id']}: chosen ")


def bad(**change):
    item = json.loads(json.dumps(EXAMPLE))
    for k, v in change.items():
        if k == "drop":
            del item["features"][v]
        elif k in ("channel", "extra"):
            item[k] = v
        else:
            item["features"][k] = v
    return item


@pytest.mark.parametrize("item,message,hint", [
    (bad(shoe_size=42), "Error: request: unknown feature 'shoe_size'.", "Hint: The strategy declares: age, tenure_days,"),
    (bad(age="old"), "Error: request: feature 'age' must be a whole number, got 'old'.", "Hint: Send age as a whole number."),
    (bad(drop="clv"), "Error: request: feature 'clv' is missing.",
     "Hint: Add 'clv' (number, Customer lifetime value) to features."),
    (bad(channel="fax"), "Error: request: channel 'fax' is not a channel of strategy 'Modehaus Lindner NBA'.",
     "Hint: Use one of: web, app, call_centre, email, push, sms."),
    (bad(return_rate=1.5), "Error: request: feature 'return_rate' must be at most 1, got 1.5.",
     "Hint: Check the value of return_rate (Share of items returned)."),
    (bad(extra=1), "Error: request: unknown field 'extra'.",
     "Hint: Allowed fields: customer_id, channel, features, contacts, rejections, assignment."),
    ('{"customer_id": "C1", ', None, None),
])
def test_bad_input_is_named_and_nothing_is_written(demo_copy, tmp_path, item, message, hint):
    before = count(demo_copy)
    res = run("decide", "--db", str(demo_copy), "--input", write(tmp_path, item))
    assert res.exit_code == 2
    lines = res.output.splitlines()
    if message is None:
        assert lines[0].startswith("Error: ") and "not valid JSON: Expecting property name" in lines[0]
    else:
        assert lines[0] == message
        assert lines[1].startswith(hint)
    assert count(demo_copy) == before


def test_malformed_strategy_is_named(demo_copy, tmp_path):
    path = write(tmp_path, "name: x\nchannels: [web\n", "s.yaml")
    res = run("decide", "--db", str(demo_copy), "--input", write(tmp_path, EXAMPLE), "--strategy", path)
    assert res.exit_code == 2
    assert res.output.splitlines()[0] == f"Error: {path}, line 3: not valid YAML: expected ',' or ']', but got '<stream end>'."


def test_verify_ok_and_failure(demo_copy):
    ok = run("verify", "--db", str(demo_copy))
    assert ok.exit_code == 0 and ok.output.startswith("OK: 2,000 decisions verified; head hash ")
    con = duckdb.connect(str(demo_copy))
    did = con.execute("SELECT decision_id FROM decisions WHERE seq = 77").fetchall()[0][0]
    con.execute("UPDATE decisions SET latency_us = latency_us + 1 WHERE seq = 77")
    con.close()
    res = run("verify", "--db", str(demo_copy))
    assert res.exit_code == 1
    assert res.output.splitlines()[0] == (f"FAILED at decision {did} (position 77): its decision row or one of its "
                                          "candidate rows was changed since it was logged.")


def test_replay_sample_summary(demo_log):
    res = run("replay", "--db", str(demo_log), "--sample", "50")
    assert res.exit_code == 0
    assert res.output.strip().endswith("Reproduced 50 of 50 decisions exactly.")


def test_replay_needs_an_id_or_a_sample(demo_log):
    res = run("replay", "--db", str(demo_log))
    assert res.exit_code == 2
    assert res.output.splitlines() == ["Error: Give either a DECISION_ID or --sample N.",
                                       "Hint: e.g. `klartext replay --sample 1000` or `klartext replay 01J...`."]


def test_demo_progress_bars_count_what_was_done(demo_run):
    """Each bar of the demo ends at its total, and the explanation bar's total is the number
    of scored candidates the demo reports explaining."""
    _, result, events = demo_run
    last = {label: (done, total) for label, done, total in events}
    assert {"Deciding and logging", "Explaining a sample of decisions"} <= set(last)
    for label, (done, total) in last.items():
        assert done == total, label
    explaining = [(d, t) for label, d, t in events if label == "Explaining a sample of decisions"]
    assert explaining[-1][0] == result.explained > 0
    assert {t for _, t in explaining} == {result.explained}  # known from the start, never stretched
    assert last["Deciding and logging"][0] == result.decisions


def test_demo_refuses_to_overwrite(demo_log):
    res = run("demo", "--db", str(demo_log), "--no-app")
    assert res.exit_code == 2
    assert res.output.splitlines()[0] == f"Error: The decision log {str(demo_log)!r} already exists."


@pytest.mark.parametrize("item,kind", [([EXAMPLE], "a list"), ("C1", "a text"), (None, "null")])
def test_a_request_that_is_not_one_object_is_named(demo_copy, tmp_path, item, kind):
    before = count(demo_copy)
    res = run("decide", "--db", str(demo_copy), "--input", write(tmp_path, json.dumps(item)))
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.output.startswith(f"Error: The request must be one JSON object, got {kind}")
    assert "Hint: Send {" in res.output
    assert count(demo_copy) == before


@pytest.mark.parametrize("command", [["import", "--format", "generic"], ["import-outcomes"]])
def test_importing_a_missing_file_leaves_no_log_behind(tmp_path, command):
    db = tmp_path / "new.duckdb"
    res = run(*command, str(tmp_path / "nope.csv"), "--db", str(db))
    assert res.exit_code == 2 and "does not exist" in res.output, res.output
    assert list(tmp_path.iterdir()) == []  # no log, no key


def test_a_log_in_use_says_what_holds_it(demo_copy, tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    monkeypatch.setattr("klartext.cli.WAIT_S", 1.0)  # a writer waits this long for the holder (15 s)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(demo_copy)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run("decide", "--db", str(demo_copy), "--input", write(tmp_path, EXAMPLE))
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 2, res.output
    assert "is in use by another process" in res.output and "wait for the job that holds it" in res.output
    assert "A dashboard lets go of its log between page runs" in res.output
    time.sleep(0.1)


def test_progress_bars_say_what_they_count(capsys):
    from klartext.cli import _Bars

    bars = _Bars()
    bars("Deciding and logging", 0, 10_000)
    bars("Deciding and logging", 4_000, 10_000)
    bars("Explaining a sample of decisions", 12, 12)
    bars.close()
    err = capsys.readouterr().err
    assert "4000/10000 decisions" in err and "decisions/s" in err
    assert "12/12 candidates" in err and "candidates/s" in err
    assert "s/]" not in err and "it/s" not in err


def test_a_model_file_that_is_not_skops_is_named(demo_copy, tmp_path):
    bogus = tmp_path / "model.skops"
    bogus.write_bytes(b"not a zip")
    res = run("model", "register", "--db", str(demo_copy), "--action", "pay_later_30", "--model", str(bogus))
    assert res.exit_code == 2 and "is not a readable skops file (BadZipFile)" in res.output, res.output
    assert "Hint: " in res.output and "skops.io.dump" in res.output and "Traceback" not in res.output


def test_a_decision_is_named_by_id_its_start_or_latest(demo_copy):
    newest = run("decisions", "--db", str(demo_copy), "--limit", "1").output.split()[0]
    by_word = run("replay", "latest", "--db", str(demo_copy))
    assert by_word.exit_code == 0 and by_word.output.startswith(f"Reproduced {newest}:"), by_word.output
    by_start = run("explain", newest[:20], "--db", str(demo_copy))
    assert by_start.exit_code == 0 and f"Decision {newest}" in by_start.output
    unknown = run("explain", "01ZZZZ", "--db", str(demo_copy))
    assert unknown.exit_code == 2 and "Decision '01ZZZZ' is not in the log" in unknown.output
    assert "latest" in unknown.output
    several = run("explain", newest[:2], "--db", str(demo_copy))
    assert several.exit_code == 2 and "is the start of several decisions" in several.output


def test_explain_speaks_plain_german_first_for_business_users(demo_copy):
    res = run("explain", "latest", "--db", str(demo_copy), "--vs", "winback_0", "--lang", "de")
    assert res.exit_code == 0, res.output
    plain, technical = res.output.split("\nTechnische Details:\n", 1)
    assert plain.startswith("Entscheidung ") and "\nGewählt: " in plain
    assert "log-odds" not in plain and ("„We miss you“" in plain or "We miss you" in plain)
    assert "Why " in technical  # the technical text follows, as before


def test_the_business_users_commands_speak_german(demo_log):
    """`--lang de`: funnel, verify, replay, decisions and compare print German, with German
    number formats and Klartext's stages by their German names."""
    fun = run("funnel", "--db", str(demo_log), "--lang", "de")
    assert fun.exit_code == 0, fun.output
    lines = fun.output.splitlines()
    assert lines[0] == "2.000 Interaktionen. Zeilen, die an jeder Stufe enden, und Interaktionen, die sie noch erreichen:"
    assert any(line.strip().startswith("Berechtigung") and "Zeilen enden hier" in line and "erreichen sie" in line
               and " %)" in line for line in lines[1:])
    assert "Eligibility" not in fun.output and "rows end here" not in fun.output
    ver = run("verify", "--db", str(demo_log), "--lang", "de")
    assert ver.exit_code == 0 and ver.output.startswith("OK: 2.000 Entscheidungen geprüft; Kopf-Hash ")
    rep = run("replay", "--db", str(demo_log), "--sample", "5", "--lang", "de")
    assert rep.exit_code == 0 and rep.output.strip().endswith("5 von 5 Entscheidungen exakt reproduziert.")
    one = run("replay", "latest", "--db", str(demo_log), "--lang", "de")
    assert one.exit_code == 0 and " reproduziert: gewählt " in one.output
    dec = run("decisions", "--db", str(demo_log), "--limit", "200", "--lang", "de")
    assert dec.exit_code == 0 and "keine Aktion" in dec.output and "no action" not in dec.output
    cmp_ = run("compare", "--db", str(demo_log), "--challenger", "examples/challenger.yaml", "--lang", "de")
    assert cmp_.exit_code == 0, cmp_.output
    assert " von 2.000 Entscheidungen (" in cmp_.output and "eine andere erste Aktion" in cmp_.output
    assert "Erwartete Marge" in cmp_.output and "Häufigste Änderungen:" in cmp_.output
    assert "Expected margin" not in cmp_.output
