"""Every CLI command that reads a file a person supplies, fed each kind of malformed content:
no traceback, an error that names the problem, a non-zero exit, and nothing written (issue #17).

The contents are each JSON type in the wrong place (a list, a text, a number, a boolean,
null, an empty or a wrong-shaped object), broken JSON/YAML, a CSV where JSON is expected, and
binary bytes.  Each command runs in-process (click's runner), so an uncaught exception is seen
as what it is, not as an exit code.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from conftest import copy_log
from klartext.cli import main

CONTENTS = {
    "list": "[1, 2, 3]",
    "text": '"hello"',
    "number": "42",
    "boolean": "true",
    "null": "null",
    "empty object": "{}",
    "wrong object": '{"customer_id": {"nested": [1]}, "channel": 7, "features": "none"}',
    "broken json": '{"customer_id": "C1", ',
    "csv": "a,b\n1,2\n",
    "binary": b"\x00\xff\xfePK\x03\x04\x89PNG\r\n",
    "empty": "",
}

#: (name, argv with {db}, {file} and {dir}) — one entry per place a person's file goes in
COMMANDS = {
    "decide --input": ["decide", "--db", "{db}", "--input", "{file}"],
    "decide --strategy": ["decide", "--db", "{db}", "--input", "examples/customer.json", "--strategy", "{file}"],
    "verify --checkpoint": ["verify", "--db", "{db}", "--checkpoint", "{file}"],
    "verify --public-key": ["verify", "--db", "{db}", "--checkpoint", "{file}", "--public-key", "{file}"],
    "checkpoint --key": ["checkpoint", "--db", "{db}", "--key", "{file}", "--out", "{dir}/ckpt.json"],
    "prove --checkpoint": ["prove", "latest", "--db", "{db}", "--checkpoint", "{file}", "--out", "{dir}/proof.json"],
    "check-proof": ["check-proof", "{file}", "--public-key", "{file}"],
    "compare --challenger": ["compare", "--db", "{db}", "--challenger", "{file}"],
    "ope --target": ["ope", "--db", "{db}", "--target", "{file}", "--reward", "margin"],
    "ope --target-probabilities": ["ope", "--db", "{db}", "--target-probabilities", "{file}"],
    "import pega-v2": ["import", "--db", "{dir}/new.duckdb", "--format", "pega-v2", "{file}"],
    "import generic": ["import", "--db", "{dir}/new.duckdb", "--format", "generic", "{file}"],
    "import-outcomes": ["import-outcomes", "--db", "{db}", "{file}"],
    "model register --strategy": ["model", "register", "--db", "{db}", "--strategy", "{file}", "--action",
                                  "winback_0", "--model", "{file}"],
    "model register --model": ["model", "register", "--db", "{db}", "--action", "winback_0", "--model", "{file}"],
    "run --strategy": ["run", "--db", "{dir}/run.duckdb", "--strategy", "{file}", "--customers", "{file}"],
    "run --customers": ["run", "--db", "{dir}/run.duckdb", "--strategy", "examples/byo/strategy.yaml",
                        "--customers", "{file}"],
    "app --users": ["app", "--db", "{db}", "--users", "{file}"],
    "serve --users": ["serve", "--db", "{db}", "--users", "{file}"],
    "serve --strategy": ["serve", "--db", "{db}", "--strategy", "{file}"],
    "user add --file": ["user", "add", "--file", "{file}", "--name", "vera", "--role", "viewer", "--proxy-only"],
}
#: the extension a person gives the file, so the content (not the name) is what is wrong
SUFFIX = {"decide --strategy": ".yaml", "compare --challenger": ".yaml", "ope --target": ".yaml",
          "model register --strategy": ".yaml", "run --strategy": ".yaml", "serve --strategy": ".yaml",
          "ope --target-probabilities": ".csv", "import pega-v2": ".csv", "import generic": ".csv",
          "import-outcomes": ".csv", "run --customers": ".csv", "model register --model": ".skops",
          "verify --public-key": ".pub", "checkpoint --key": ".key", "app --users": ".txt", "serve --users": ".txt",
          "user add --file": ".txt"}
#: an empty users file is a users file with nobody in it yet: adding the first user is right
ACCEPTED = {("user add --file", "empty")}


def _state(db: Path, folder: Path) -> tuple:
    """What a failed command must leave as it was: the log's rows and the folder's files."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = tuple(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                     for t in ("decisions", "candidates", "outcomes", "models", "strategies", "explanations"))
    return rows, sorted((p.name, p.stat().st_size) for p in folder.iterdir())


@pytest.fixture(scope="module")
def log_copy(demo_log, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("malformed")
    dst = folder / "log.duckdb"
    copy_log(demo_log, dst)
    return dst


@pytest.mark.parametrize("command", list(COMMANDS))
def test_malformed_input_gets_an_error_not_a_traceback_and_writes_nothing(command, log_copy, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for kind, content in CONTENTS.items():
        if (command, kind) in ACCEPTED:
            continue
        file = work / ("input" + SUFFIX.get(command, ".json"))
        file.write_bytes(content if isinstance(content, bytes) else content.encode())
        before = _state(log_copy, work)
        argv = [a.format(db=log_copy, file=file, dir=work) for a in COMMANDS[command]]
        res = CliRunner().invoke(main, argv)
        said = res.output + (res.stderr if hasattr(res, "stderr") else "")
        where = f"{command} with {kind}: {said[-800:]}"
        assert isinstance(res.exception, SystemExit) or res.exception is None, (where, repr(res.exception))
        assert "Traceback" not in said, where
        assert res.exit_code != 0, where  # malformed input is refused ...
        assert "Error:" in said or "Usage:" in said, where  # ... with a message that says so
        assert _state(log_copy, work) == before, where  # ... and leaves nothing behind


def test_an_import_that_fails_leaves_no_new_log_and_no_key(tmp_path):
    # a file type Klartext cannot read was found only after the new log and its key were made
    (tmp_path / "export.dat").write_text("pyName,pxInteractionID\nA,1\n")
    res = CliRunner().invoke(main, ["import", "--db", str(tmp_path / "new.duckdb"), "--format", "pega-v2",
                                    str(tmp_path / "export.dat")])
    assert res.exit_code == 2 and "unknown file type '.dat'" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.dat"]


@pytest.mark.parametrize("hours", ["nan", "inf", "-1"])
def test_serve_refuses_a_rotation_age_that_is_not_a_number_of_hours(hours, tmp_path):
    """`--rotate-every nan` passed click's range (nan < 0 is false) and turned rotation by age off
    without a word."""
    r = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "x.duckdb"), "--workers", "2", "--rotate-every", hours])
    assert r.exit_code == 2
    want = (f"Invalid value for '--rotate-every': {hours} is not a number of hours; give a finite one (24: daily), "
            "or 0 to rotate by size only." if hours != "-1" else
            "Invalid value for '--rotate-every': -1.0 is not in the range x>=0.")
    assert want in " ".join(r.output.split()), r.output
