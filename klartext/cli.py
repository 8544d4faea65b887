"""The ``klartext`` command line.

Every error a user can cause ends as ``Error: <what was wrong>`` plus a ``Hint:`` line with
the next step, and a non-zero exit code (2 for bad input, 1 for a failed check).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from decisioning.errors import KlartextError, LogInUse

DEFAULT_DB = "klartext_demo.duckdb"
#: How long a command that writes the log waits while another process holds it: a dashboard
#: holds its log only while a page runs (a second or two).
WAIT_S = 15.0

#: ``--lang`` of the commands whose messages a business user reads
lang_option = click.option("--lang", type=click.Choice(["en", "de"]), default=None,
                           help="Language of the messages (default: $KLARTEXT_LANG, else en).")


def _t(key: str, lang: str | None, **values) -> str:
    from explain import i18n

    return i18n.t(key, i18n.language(lang), **values)


def _n(x: float, lang: str | None, decimals: int = 0) -> str:
    from explain import i18n

    return i18n.number(x, i18n.language(lang), decimals)


def _fail(exc: KlartextError, code: int = 2) -> None:
    click.echo(f"Error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)
    sys.exit(code)


def _read(db: str, writable_if_free: bool = False, damaged_ok: bool = False):
    """Open a log to read.  While `klartext serve` holds it, this is the service's live
    replica (said on stderr).  ``writable_if_free``: open read-write when nobody holds the
    file (so computed explanations are stored).  ``damaged_ok``: open a log whose shards
    are missing files (for ``verify`` to name them)."""
    from decision_log.store import DecisionLog

    if writable_if_free and not DecisionLog.has_shards(db):  # a writer sees its own file only: read a sharded log whole
        try:
            return DecisionLog.open(db, create=False, wait_s=3.0)
        except LogInUse:
            pass
    log = DecisionLog.open(db, read_only=True, damaged_ok=damaged_ok)
    if log.replica is not None:
        click.echo(f"Note: `klartext serve` (pid {log.replica.service_pid}) holds {db}; reading its live replica "
                   f"as of {log.replica.updated[11:19]} UTC ({log.replica.decisions:,} decisions).", err=True)
    return log


#: A progress bar that says what it counts: ``Deciding and logging: 40%|████  | 4,000/10,000 decisions
#: [00:02<00:03, 1,905.33 decisions/s]`` (tqdm's own format inverts slow rates to "s/it").
_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{unit} [{elapsed}<{remaining}, {rate_noinv_fmt}]"


def _decision_id(log, text: str) -> str:
    """The decision a person named: ``latest`` (the newest), a full id, or the start of one
    that only one decision has (as git takes a short commit hash)."""
    from decision_log import queries

    con = log.con.cursor()
    if text == "latest":
        found = queries.find_decisions(con, limit=1)
        if found.empty:
            raise KlartextError(f"The log {log.path!r} holds no decision yet.", "Log some with `klartext demo`.")
        return str(found["decision_id"].iloc[0])
    found = queries.find_decisions(con, decision_id=text, limit=3)
    ids = found["decision_id"].tolist()
    if text in ids or len(ids) == 1:
        return text if text in ids else ids[0]
    if not ids:
        raise KlartextError(f"Decision {text!r} is not in the log {log.path!r}.",
                            f"`klartext decisions --db {log.path}` lists the newest; `latest` names the newest one.")
    raise KlartextError(f"{text!r} is the start of several decisions ({', '.join(ids[:2])}, …).",
                        "Give more of the id.")


class _Bars:
    """tqdm bars keyed by label, created on first use."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        bar = self.bars.get(label)
        if bar is None:
            from klartext.jobs import UNITS

            bar = self.bars[label] = tqdm(total=total, desc=label, unit=" " + UNITS.get(label, "steps"),
                                          file=sys.stderr, dynamic_ncols=True, leave=True, bar_format=_BAR)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class _Klartext(click.Group):
    """The one error boundary: any :class:`KlartextError` a command raises ends as
    ``Error: …`` / ``Hint: …`` on stderr and exit code 2 (:func:`_fail`)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KlartextError as exc:
            _fail(exc)


@click.group(cls=_Klartext)
@click.version_option(package_name="klartext")
def main() -> None:
    """Klartext — next-best-action decisions you can explain after the fact."""


@main.command()
@click.option("--customers", default=10_000, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Customers to simulate (one decision each). Past 250,000 they come in cohorts of 250,000, "
                   "each over 28 days of its own, one after the other (peak memory 3.3 GB at 10 million).")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log to write (DuckDB file).")
@click.option("--seed", default=0, show_default=True, help="Random seed of the simulation.")
@click.option("--scenario", type=click.Choice(["retail", "hillstrom"]), default="retail", show_default=True,
              help="retail: the simulated fashion retailer; hillstrom: the real MineThatData e-mail experiment.")
@click.option("--replace", is_flag=True, help="Delete an existing log at --db first.")
@click.option("--explain", "explain_sample", default=2000, show_default=True, type=click.IntRange(0),
              help="Explain (and check) this many random decisions for the dashboard's global views.")
@click.option("--no-app", is_flag=True, help="Do not start the dashboard afterwards.")
@click.option("--port", default=8501, show_default=True, help="Port of the dashboard.")
@click.option("--plant", default="", metavar="FAULTS",
              help="Plant known faults from the period's middle day on, for `klartext report` to find: "
                   "drift (the average order value arrives 1.5 times as high), disparity (a strategy version "
                   "that weights incentives up threefold for women), or drift,disparity.")
def demo(customers: int, db: str, seed: int, scenario: str, replace: bool, explain_sample: int, no_app: bool,
         port: int, plant: str) -> None:
    """Simulate the retailer (or load the Hillstrom experiment), train models, decide for every
    customer, log it, explain a sample, open the dashboard."""
    from klartext.jobs import run_demo, run_hillstrom

    if Path(db).exists():
        if not replace:
            _fail(KlartextError(f"The decision log {db!r} already exists.",
                                "Pass --replace to overwrite it, or another path with --db (e.g. --db demo2.duckdb)."))
        for p in (Path(db), Path(db + ".wal")):
            p.unlink(missing_ok=True)
    bars = _Bars()
    try:
        if scenario == "hillstrom":
            res = run_hillstrom(db, seed=seed, progress=bars, explain_sample=explain_sample)
        else:
            res = run_demo(db, customers, seed=seed, progress=bars, explain_sample=explain_sample,
                           plant=tuple(p.strip() for p in plant.split(",") if p.strip()))
    except KlartextError as exc:
        bars.close()
        _fail(exc)
    bars.close()
    secs = res.seconds
    click.echo(
        f"Logged {res.decisions:,} decisions with {res.candidates:,} candidate rows and {res.outcomes:,} outcomes "
        f"to {db} (strategy {res.strategy_version}).\n"
        f"{res.no_action:,} decisions ended with no action. Decide + log took {secs['decide_and_log']:.1f} s "
        f"({res.decisions / max(secs['decide_and_log'], 1e-9):,.0f} decisions/s)."
    )
    if res.explained:
        click.echo(f"Explained {res.explained:,} scored candidates of {min(explain_sample, res.decisions):,} decisions "
                   f"(every one checked: re-scored and additive) in {secs['explain']:.1f} s.")
    if no_app:
        click.echo(f"Open the dashboard with: klartext app --db {db}")
        return
    _run_app(db, port)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the dashboard is killed when `klartext app` dies, however it dies (kill -9
    included), so no Streamlit server outlives the command that started it.  SIGKILL, not
    SIGTERM: Streamlit can sit on a SIGTERM while a browser session is open, and the
    dashboard only reads the log, so there is nothing to finish."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _run_app(db: str, port: int, host: str = "127.0.0.1", users: str | None = None,
             auth_header: str | None = None) -> None:
    from klartext.access import load_users, require_auth_beyond_loopback

    require_auth_beyond_loopback(host, users, auth_header, "The dashboard")
    if users:
        load_users(users)  # a broken users file is named here, not in the browser
    here = Path(__file__).resolve().parent
    # installed: klartext/dashboard/app.py; in a clone: app.py at the top of the repository
    app = next((p for p in (here / "dashboard" / "app.py", here.parent / "app.py") if p.exists()), None)
    if app is None:
        _fail(KlartextError(f"The dashboard (app.py) is missing from the installation at {here}.",
                            "Reinstall Klartext: pip install --force-reinstall klartext (or pip install . in a clone)."))
    from analysis.kernels import compile_all

    click.echo("Preparing the trade-off analyses (compiled once per installation) …")
    compile_all()
    click.echo(f"Starting the dashboard on http://{'localhost' if host in ('127.0.0.1', 'localhost') else host}:{port}"
               + (" (sign-in required)" if users else "") + " (Ctrl+C to stop)")
    env = dict(os.environ, KLARTEXT_DB=str(Path(db).resolve()))
    env.pop("KLARTEXT_USERS", None)
    env.pop("KLARTEXT_AUTH_HEADER", None)
    if users:
        env["KLARTEXT_USERS"] = str(Path(users).resolve())
    if auth_header:
        env["KLARTEXT_AUTH_HEADER"] = auth_header
    child = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
                              "--server.address", host, "--server.headless", "true",
                              "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
                              "--server.fileWatcherType", "none"], env=env,
                             preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        child.wait()
    finally:  # Ctrl+C or any other end of this command ends the dashboard too
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--port", default=8501, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --users.")
@click.option("--users", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Users file (`klartext user add`): everyone signs in; pages follow the role.")
@click.option("--auth-header", default=None, metavar="NAME",
              help="A header your reverse proxy sets to the signed-in user's name (trusted).")
def app(db: str, port: int, host: str, users: str | None, auth_header: str | None) -> None:
    """Open the dashboard on a decision log (fixed at start: the browser cannot open another file)."""
    if not Path(db).exists():
        _fail(KlartextError(f"No decision log at {db!r}.", f"Create one with `klartext demo --db {db}`."))
    _run_app(db, port, host, users, auth_header)


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="JSON file with one request: customer_id, channel, features (contacts, rejections optional).")
@click.option("--strategy", "strategy_path", default=None, type=click.Path(dir_okay=False),
              help="Strategy YAML to use (default: the newest strategy in the log).")
def decide(db: str, input_path: str, strategy_path: str | None) -> None:
    """Make one decision, log it, and print it as JSON."""
    from decision_log.store import DecisionLog
    from decisioning.strategy import load_strategy
    from klartext.jobs import batch_to_json, decide_one

    try:
        text = Path(input_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(KlartextError(f"Input file {input_path!r} does not exist.",
                            "Pass a JSON file with customer_id, channel and features."))
    except UnicodeDecodeError:
        _fail(KlartextError(f"Input file {input_path!r} is not a text file (UTF-8 JSON).",
                            "Pass a JSON file with customer_id, channel and features (examples/customer.json)."))
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(KlartextError(f"{input_path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                            "Fix the JSON syntax (a missing comma or quote is the usual cause)."))
    strategy = load_strategy(strategy_path) if strategy_path else None
    if not Path(db).exists():
        raise KlartextError(f"No decision log at {db!r}.", f"Create one with `klartext demo --db {db} --no-app`.")
    with DecisionLog.open(db, wait_s=WAIT_S) as log:
        batch, strategy = decide_one(log, item, strategy)
        click.echo(json.dumps(batch_to_json(batch, strategy), indent=2))


@main.command()
@click.argument("decision_id", required=False)
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--sample", type=click.IntRange(1), default=None, help="Replay this many random decisions.")
@click.option("--seed", default=0, show_default=True, help="Seed for --sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@lang_option
def replay(decision_id: str | None, db: str, sample: int | None, seed: int, as_json: bool, lang: str | None) -> None:
    """Re-run logged decisions with their pinned strategy and models and compare exactly.

    DECISION_ID is a decision's id, the start of one, or `latest` (the newest).
    """
    from decision_log.replay import replay as do_replay
    from decision_log.replay import sample_ids

    if (decision_id is None) == (sample is None):
        _fail(KlartextError("Give either a DECISION_ID or --sample N.",
                            "e.g. `klartext replay --sample 1000` or `klartext replay 01J...`."))
    with _read(db) as log:
        ids = [_decision_id(log, decision_id)] if decision_id else sample_ids(log, sample, seed)
        if decision_id:
            _viewed(log, ids[0])
        results = []
        with tqdm(total=len(ids), desc="Replaying", unit=" decisions", file=sys.stderr, bar_format=_BAR,
                  disable=len(ids) <= 2000) as bar:
            for start in range(0, len(ids), 2000):
                results.extend(do_replay(log, ids[start:start + 2000]))
                bar.update(len(ids[start:start + 2000]))
    ok = sum(r.reproduced for r in results)
    if as_json:
        click.echo(json.dumps({
            "replayed": len(results), "reproduced": ok,
            "decisions": [{"decision_id": r.decision_id, "reproduced": r.reproduced, "chosen": r.chosen_logged,
                           "replayed_chosen": r.chosen_replayed, "note": r.note,
                           "differences": [d.__dict__ for d in r.differences]} for r in results],
        }, indent=2, default=str))
    elif decision_id:
        r = results[0]
        if r.reproduced:
            click.echo(_t("cli.replay_ok", lang, id=r.decision_id,
                          chosen=", ".join(r.chosen_logged) or _t("cli.no_action", lang)))
        elif not r.replayable:
            note = r.note if r.erased_at is None else _t("erased.banner", lang, date=f"{r.erased_at:%Y-%m-%d}")
            click.echo(_t("cli.replay_cannot", lang, id=r.decision_id, note=note.rstrip(".")))
        else:
            click.echo(_t("cli.replay_differs", lang, id=r.decision_id, logged=r.chosen_logged, replayed=r.chosen_replayed))
            for d in r.differences[:20]:
                click.echo(_t("cli.replay_field", lang, field=f"{d.action_id}.{d.field}", logged=repr(d.logged),
                              replayed=repr(d.replayed)))
    else:
        click.echo(_t("cli.replay_summary", lang, ok=_n(ok, lang), n=_n(len(results), lang)))
        for r in [r for r in results if not r.reproduced][:10]:
            first = r.differences[0] if r.differences else None
            detail = _t("cli.replay_field", lang, field=f"{first.action_id}.{first.field}", logged=repr(first.logged),
                        replayed=repr(first.replayed)).strip() if first else r.note
            click.echo(f"  {r.decision_id}: {detail}")
    if ok != len(results):
        sys.exit(1)


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--checkpoint", "checkpoint_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="A signed checkpoint (`klartext checkpoint`): also check that the log still extends it.")
@click.option("--public-key", "public_key", default=None, type=click.Path(dir_okay=False, exists=True),
              help="The public key the checkpoint was signed with (the .pub of `klartext keygen`).")
@lang_option
def verify(db: str, checkpoint_path: str | None, public_key: str | None, lang: str | None) -> None:
    """Recompute the hash chain and every seal; name the first decision or table that was changed.

    With --checkpoint and --public-key, also catch what a chain alone cannot: deleted newest
    decisions and a chain rebuilt after an edit.
    """
    from decision_log import checkpoints

    if (checkpoint_path is None) != (public_key is None):
        _fail(KlartextError("--checkpoint and --public-key go together.",
                            "e.g. `klartext verify --db log.duckdb --checkpoint ckpt.json --public-key signing.key.pub`."))
    with _read(db, damaged_ok=True) as log:
        if log.replica is not None:
            click.echo(_t("cli.verify_replica", lang, db=db, time=log.replica.updated[11:19],
                          n=_n(log.replica.decisions, lang)))
        import getpass

        # a full verification is recorded in the compliance register: the governance report starts from it
        res = log.verify() if log.replica is not None else log.verify_and_record(getpass.getuser(), "cli")
        broken = None
        if res.ok and checkpoint_path:
            ckpt = checkpoints.read_checkpoint(checkpoint_path)
            broken = checkpoints.check(log.con.cursor(), ckpt, checkpoints.load_public(public_key))
    if res.ok and broken:
        click.echo(_t("cli.verify_ckpt_failed", lang, problem=broken))
        sys.exit(1)
    if res.ok and checkpoint_path:
        click.echo(_t("cli.verify_ckpt_ok", lang, created=ckpt["created"], n=_n(ckpt["decisions"], lang),
                      head=ckpt["head_hash"][:16], signer=ckpt["public_key"][:16]))
    if res.ok:
        click.echo(_t("cli.verify_ok", lang, n=_n(res.n_decisions, lang), head=res.head_hash))
        if res.seal_head is not None:
            click.echo(_t("cli.verify_sealed", lang, head=res.seal_head[1], write=res.seal_head[0]))
        for note in res.notes:
            click.echo(_t("cli.note", lang, note=note))
        return
    if res.table is not None:
        click.echo(_t("cli.verify_table_failed", lang, table=res.table, problem=res.problem))
    else:
        click.echo(_t("cli.verify_failed", lang, id=res.first_bad_decision, seq=res.first_bad_seq, problem=res.problem))
    click.echo(_t("cli.verify_head", lang, head=res.head_hash))
    sys.exit(1)


@main.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the signing key (its public key goes to OUT.pub).")
def keygen(out: str) -> None:
    """Make an Ed25519 key pair for signing checkpoints. Keep the signing key away from the log."""
    from decision_log import checkpoints

    key, pub = checkpoints.keygen(out)
    click.echo(f"Wrote the signing key {key} (only you may read it) and the public key {pub}. Keep the signing key "
               "outside the log's folder; give the public key to whoever checks the log.")


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The signing key from `klartext keygen`.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Where to write the checkpoint (JSON).")
def checkpoint(db: str, key_path: str, out: str) -> None:
    """Verify the log, then sign its heads: a checkpoint catches later truncation and re-chaining."""
    from decision_log import checkpoints

    key = checkpoints.load_private(key_path)
    with _read(db) as log:
        ckpt = checkpoints.make(log.con.cursor(), key, Path(db).name, log.verify())
    Path(out).write_text(json.dumps(ckpt, indent=2) + "\n")
    click.echo(f"Signed checkpoint of {ckpt['decisions']:,} decisions (head {ckpt['head_hash'][:16]}…) "
               f"written to {out}.")


@main.command()
@click.argument("decision_id")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--checkpoint", "checkpoint_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The signed checkpoint to prove the decision against.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Where to write the proof (JSON).")
def prove(decision_id: str, db: str, checkpoint_path: str, out: str) -> None:
    """A proof that one decision is in the signed log, checkable without the log (`klartext check-proof`).

    DECISION_ID is a decision's id, the start of one, or `latest` (the newest).
    """
    from decision_log import checkpoints

    ckpt = checkpoints.read_checkpoint(checkpoint_path)
    with _read(db) as log:
        decision_id = _decision_id(log, decision_id)
        proof = checkpoints.prove(log.con.cursor(), decision_id, ckpt)
    Path(out).write_text(json.dumps(proof) + "\n")
    click.echo(f"Proof of decision {decision_id} (position {proof['seq']}, "
               f"{len(proof['later_record_hashes']):,} later records to the signed head) written to {out}.")


@main.command("check-proof")
@click.argument("proof_path", type=click.Path(dir_okay=False, exists=True))
@click.option("--public-key", "public_key", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The public key the checkpoint in the proof was signed with.")
def check_proof(proof_path: str, public_key: str) -> None:
    """Check a proof from `klartext prove` without the log."""
    from decision_log import checkpoints

    try:
        proof = json.loads(Path(proof_path).read_text(encoding="utf-8"))
    except ValueError:
        raise KlartextError(f"{proof_path} is not JSON.", "Use the file `klartext prove` wrote.") from None
    row = checkpoints.check_proof(proof, checkpoints.load_public(public_key))
    ck = row["checkpoint"]
    click.echo(f"OK: decision {row['decision_id']} ({row['ts']:%Y-%m-%d %H:%M:%S} UTC, channel {row['channel']}, "
               f"chosen {', '.join(row['chosen_actions']) or 'no action'}, {row['candidates']} candidate rows) is "
               f"position {row['seq']} of the log {ck['log']!r} signed on {ck['created']} "
               f"({ck['decisions']:,} decisions, head {ck['head_hash'][:16]}…).")


def _export_kind(out: str) -> str:
    """The kind of an export file (``.html``, ``.pdf`` or ``.json``), checked before any work."""
    kind = Path(out).suffix.lower()
    if kind not in (".html", ".pdf", ".json"):
        raise KlartextError(f"--out {out!r}: unknown file type {kind or '(none)'!r}.",
                            "Name the file .html (a printable page), .pdf or .json.")
    return kind


def _export(out: str, module, doc: dict) -> bytes:
    """Write ``doc`` to ``out`` with the export module's ``to_pdf``, ``to_html`` or ``to_json``
    (evidence, the customer's explanation); returns the bytes written."""
    kind = _export_kind(out)
    data = module.to_pdf(doc) if kind == ".pdf" else (module.to_html(doc) if kind == ".html" else module.to_json(doc)).encode()
    Path(out).write_bytes(data)
    return data


@main.command()
@click.argument("decision_id")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write it: FILE.html (printable page), FILE.pdf or FILE.json.")
@click.option("--lang", type=click.Choice(["en", "de"]), default=None, help="Language (default: $KLARTEXT_LANG, else en).")
@click.option("--by", "by", default=None, help="Who exports it (default: your login name).")
def evidence(decision_id: str, db: str, out: str, lang: str | None, by: str | None) -> None:
    """The evidence file of one decision, for a reviewer to file: its place in the hash chain
    checked now, replay, reasons, the fate of every action, why not each other one, outcomes
    and inputs, with who exported it and when.

    DECISION_ID is a decision's id, the start of one, or `latest` (the newest).
    """
    import getpass

    from explain import evidence as ev_mod
    from explain import i18n
    from explain.api import Explainer

    _export_kind(out)
    with _read(db) as log:
        decision_id = _decision_id(log, decision_id)
        _viewed(log, decision_id, by)
        ev = ev_mod.evidence(log, Explainer(log), decision_id, by or getpass.getuser(), i18n.language(lang))
    data = _export(out, ev_mod, ev)
    rec = ev["record"]
    click.echo(f"Evidence of decision {decision_id} (position {rec['seq']} of {rec['decisions']:,}, "
               f"{'unchanged' if rec['record_intact'] and rec['link_intact'] else 'CHANGED'}) written to {out} "
               f"({len(data) / 1024:,.0f} KB).")


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--from", "start", default=None,
              help="First day (YYYY-MM-DD, UTC; default: 28 days up to --to, or the log's second half if it spans "
                   "less than 8 weeks).")
@click.option("--to", "end", default=None, help="Last day, included (default: the log's newest decision's day).")
@click.option("--compare-to", "compare", default="previous", show_default=True,
              help="The period beside it: previous (as long, just before), FROM..TO, or none.")
@click.option("--lang", type=click.Choice(["en", "de"]), default=None, help="Language (default: $KLARTEXT_LANG, else en).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write it: FILE.html (self-contained, printable), FILE.pdf or FILE.json (the figures).")
@click.option("--verify", "verify_mode", type=click.Choice(["since", "full"]), default="since", show_default=True,
              help="Integrity: since (re-read what came after the newest full `klartext verify`; a full one when "
                   "there is none) or full (re-read every decision and sealed row now).")
@click.option("--sample", type=click.IntRange(100), default=50_000, show_default=True,
              help="Decisions per period whose inputs are opened (input drift, fairness, rule re-check, frontier); "
                   "more than the period holds checks every one.")
def report(db: str, start: str | None, end: str | None, compare: str, lang: str | None, out: str, verify_mode: str,
           sample: int) -> None:
    """The governance report of a period: summary, decisions and margin against the period
    before, margin against retention, strategy changes and their effect, model monitoring
    (AUC, calibration, PSI), policy compliance counted from the log, fairness of offers and
    incentives, and the log's integrity — with an appendix defining every figure."""
    from datetime import date

    from analysis import governance
    from explain import i18n
    from explain import report as report_mod

    kind = _export_kind(out)
    lang = i18n.language(lang)

    def day(text: str, opt: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise KlartextError(f"{opt} {text!r} is not a date.", "Write it as YYYY-MM-DD, e.g. 2026-11-30.") from None
    with _read(db) as log:
        first, last = log.con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM decisions "
                                      "WHERE source = 'klartext'").fetchall()[0]
        if last is None:
            raise KlartextError(f"The log {db!r} holds no decision made by a Klartext strategy.",
                                "The report reads Klartext's own decisions: make some with `klartext demo` or "
                                "`klartext run`.")
        to = day(end, "--to") if end else last
        frm = day(start, "--from") if start else governance.default_period(first, to).start
        if to < frm:
            raise KlartextError(f"--from {frm} is after --to {to}.", "Write the earlier day as --from.")
        period = governance.Period(frm, to)
        cmp_: governance.Period | str | None = {"previous": "previous", "none": None}.get(compare.strip().lower(), "")
        if cmp_ == "":
            cmp_ = governance.parse_period(compare)
        bars, done = _Bars(), [0]

        def step(_what: str) -> None:
            done[0] += 1
            bars("Building the report", done[0], 8)
        from contextlib import nullcontext

        try:  # Chromium for the figures starts while the numbers are computed
            with report_mod.figure_server() if kind != ".json" else nullcontext():
                rep = governance.build(log, period, cmp_, sample=sample, progress=step,
                                       full_verify=verify_mode == "full", via="cli")
                data = report_mod.render(rep, lang, kind.lstrip("."))
            step("render")
        finally:
            bars.close()
    Path(out).write_bytes(data)
    n = len(rep["attention"])
    click.echo(f"Governance report {period.start} to {period.end} ({rep['kpis']['current']['decisions']:,} decisions) "
               f"written to {out} ({len(data) / 1024:,.0f} KB): "
               + (f"{n} finding(s) need attention." if n else "nothing needs attention."))


@main.command()
@click.argument("decision_id", required=False)
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--vs", "other", default=None, help="Explain why the winner and not this action.")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="Explain this many random decisions (all scored candidates), check and store them.")
@click.option("--seed", default=0, show_default=True, help="Seed for --sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--lang", type=click.Choice(["en", "de"]), default=None,
              help="Start with the decision in plain words in this language (default: $KLARTEXT_LANG if set).")
def explain(decision_id: str | None, db: str, other: str | None, sample: int | None, seed: int,
            as_json: bool, lang: str | None) -> None:
    """Why a decision came out as it did: exact SHAP attributions, reasons, why-not-B.

    DECISION_ID is a decision's id, the start of one, or `latest` (the newest).

    Attributions are computed from the logged inputs with the pinned model, checked
    (re-scored propensity and additivity) and stored in the log, so they are computed once.
    """
    from decision_log.replay import sample_ids
    from explain import i18n
    from explain.api import Explainer
    from explain.text import contrast_text, explanation_text, plain_text

    if (decision_id is None) == (sample is None):
        _fail(KlartextError("Give either a DECISION_ID or --sample N.",
                            "e.g. `klartext explain 01J... --vs winback_20` or `klartext explain --sample 1000`."))
    with _read(db, writable_if_free=True) as log:
        ex = Explainer(log, seed=seed)
        if sample is not None:
            ids = sample_ids(log, sample, seed, source="klartext")
            with tqdm(desc="Explaining candidates", unit=" rows", file=sys.stderr) as bar:
                summary = ex.explain_many(ids, progress=bar.update)
            if summary["candidates_explained"] == 0:
                raise KlartextError(f"None of the {summary['decisions']:,} sampled decisions had a scored "
                                    "candidate: nothing was explained or checked.",
                                    "Explanations need decisions whose candidates a model scored.")
            if as_json:
                click.echo(json.dumps(summary, indent=2, default=str))
            else:
                click.echo(f"Explained {summary['candidates_explained']:,} scored candidates of "
                           f"{summary['decisions']:,} decisions ({summary['computed_now']:,} computed now, "
                           f"the rest read from the log).")
                if log.read_only and summary["computed_now"]:
                    click.echo("Note: another process holds the log (the dashboard?), so these explanations were "
                               "checked but not stored. Stop it and run this again to store them.", err=True)
                click.echo(f"Largest additivity residual {summary['max_additivity_residual']:.1e} "
                           f"(limit 1e-06); largest re-scoring error {summary['max_rescore_error']:.1e} (limit 1e-12).")
                for f in summary["failures"][:10]:
                    click.echo(f"  MISMATCH {f['decision_id']} {f['action_id']}: {'; '.join(f['problems'])}")
            if summary["failures"]:
                sys.exit(1)
            return
        decision_id = _decision_id(log, decision_id)
        _viewed(log, decision_id)
        e = ex.explain(decision_id)
        c = ex.why_not(decision_id, other) if other else None
    if as_json:
        out = e.to_dict()
        if c is not None:
            out["why_not"] = c.to_dict()
        click.echo(json.dumps(out, indent=2, default=str))
    else:
        if lang or os.environ.get(i18n.LANG_ENV):
            chosen = i18n.language(lang)
            click.echo(plain_text(e, chosen, c))
            click.echo(f"\n{i18n.t('replay.technical', chosen)}:\n")
        click.echo(explanation_text(e))
        if c is not None:
            click.echo("")
            click.echo(contrast_text(c))
    if not e.verified and e.strategy is not None:
        sys.exit(1)


def _pairs(values: tuple[str, ...], option: str, cast=float) -> dict:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = cast(val)
        except ValueError:
            _fail(KlartextError(f"{option} {v!r} is not KEY=VALUE with a number.",
                                f"e.g. {option} service=1.5"))
    return out


def _setting(margin_weight, retention_weight, lever, threshold, top_n):
    from analysis.tradeoff import Setting

    return Setting(margin_weight, retention_weight, _pairs(lever, "--lever"), _pairs(threshold, "--threshold"),
                   _pairs(top_n, "--top-n", int))


_WHAT_IF = [
    click.option("--margin-weight", type=float, default=None, help="KPI weight of margin (default: the strategy's)."),
    click.option("--retention-weight", type=float, default=None, help="KPI weight of retention."),
    click.option("--lever", multiple=True, metavar="ACTION_OR_ISSUE=V", help="Replace a lever (repeatable)."),
    click.option("--threshold", multiple=True, metavar="CHANNEL=V", help="Replace a no-action threshold."),
    click.option("--top-n", multiple=True, metavar="CHANNEL=N", help="Replace a channel's number of slots."),
]


def _what_if_options(f):
    for opt in reversed(_WHAT_IF):
        f = opt(f)
    return f


def _echo_frame(df, floatfmt: str = "{:,.4g}") -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", floatfmt.format):
        click.echo(df.to_string(index=False))


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--strategy-version", default=None, help="Decisions of this strategy version (default: newest).")
@_what_if_options
@click.option("--steps", default=21, show_default=True, type=click.IntRange(2, 1001),
              help="Points on the margin/retention sweep.")
@click.option("--sensitivity", is_flag=True, help="Also: share of winners that change per dropped factor / lever.")
@click.option("--lever-for", "lever_for", default=None, metavar="ACTION=SHARE",
              help="Find the lever that gives ACTION this share of decisions (e.g. join_loyalty=0.05).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def simulate(db, strategy_version, margin_weight, retention_weight, lever, threshold, top_n, steps, sensitivity,
             lever_for, as_json) -> None:
    """Re-arbitrate logged decisions under other KPI weights, levers, thresholds or slots —
    no model calls: the margin/retention frontier, what-ifs, sensitivity, a lever finder."""
    from analysis import tradeoff as T
    from decision_log import queries

    setting = _setting(margin_weight, retention_weight, lever, threshold, top_n)
    target = _pairs((lever_for,), "--lever-for") if lever_for else None
    with _read(db) as log:
        if strategy_version is None and queries.only_imported(log.con.cursor()):
            _simulate_imported(log, lever, sensitivity, as_json, other=(margin_weight, retention_weight,
                                                                        threshold, top_n, lever_for))
            return
        f = T.load_factors(log, strategy_version)
    greedy = int((~f.explored).sum())
    out: dict = {"strategy_version": f.strategy.version, "decisions": len(f), "greedy_decisions": greedy,
                 "reproduced_by_rearbitration": greedy - f.check()}
    try:
        if setting != T.Setting():
            out["what_if"] = T.what_if(f, setting)
        out["frontier"] = T.sweep(f, steps)
        if sensitivity:
            out["sensitivity"] = T.sensitivity(f)
        if target:
            (action, share), = target.items()
            if action not in f.strategy.action_ids:
                raise KlartextError(f"Unknown action {action!r} in --lever-for.",
                                    f"Use one of: {', '.join(f.strategy.action_ids)}.")
            out["lever_for"] = T.lever_for_share(f, action, share)
    except ValueError as exc:
        _fail(KlartextError(str(exc), "Check the names against the strategy (klartext explain shows them)."))
    if as_json:
        click.echo(T.to_json(out))
        return
    click.echo(f"{out['decisions']:,} decisions of strategy {out['strategy_version']}; re-arbitrating the logged "
               f"factors reproduces the first action of {out['reproduced_by_rearbitration']:,} of the {greedy:,} "
               f"greedy ones ({out['decisions'] - greedy:,} were explored at random).")
    if "what_if" in out:
        w = out["what_if"]
        click.echo(f"\nWhat-if: {w['changed']:.2%} of decisions get another first action.")
        for k in T.KPI_TABLE:
            click.echo(f"  {k.label:<26} {w['base'][k.name]:>14,.1f} → {w['what_if'][k.name]:>14,.1f}")
        _echo_frame(w["by_issue"][["key", "contacts_delta", "margin_delta", "retention_delta"]])
    click.echo("\nMargin/retention sweep (λ = 0.5 is the strategy; * = on the frontier):")
    fr = out["frontier"].copy()
    fr["frontier"] = fr["efficient"].map({True: "*", False: ""})
    _echo_frame(fr[["lambda", "margin_weight", "retention_weight", "contacts", "margin", "retention",
                    "incentive_spend", "changed", "frontier"]], "{:,.2f}")
    if "sensitivity" in out:
        click.echo("\nSensitivity (share of decisions whose first action changes):")
        _echo_frame(out["sensitivity"])
    if "lever_for" in out:
        click.echo("\n" + out["lever_for"]["note"])


def _simulate_imported(log, lever, sensitivity: bool, as_json: bool, other: tuple) -> None:
    """`simulate` on an imported log: re-arbitrate the logged four factors (what-if levers,
    dropped factors, sensitivity); there is no margin/retention split to sweep."""
    from analysis import imported as I
    from analysis import tradeoff as T

    if any(o not in (None, ()) for o in other):
        raise KlartextError("On imported decisions only --lever and --sensitivity apply: the source's value does "
                            "not split into margin and retention, and its thresholds and slots are not in the log.",
                            "Use --lever ISSUE_OR_GROUP_OR_ACTION=FACTOR and --sensitivity.")
    lf = I.load(log.con.cursor())
    has = int((lf.logged_first >= 0).sum())
    out: dict = {"source": lf.source, "decisions": len(lf), "with_a_chosen_action": has, "reproduced": lf.reproduced,
                 "frontier": None, "frontier_note": "not available: the source's value does not split into margin "
                                                    "and retention"}
    levers = _pairs(lever, "--lever") if lever else {}
    if levers:
        out["what_if"] = I.what_if(lf, levers)
    if sensitivity:
        out["sensitivity"] = I.sensitivity(lf)
    if as_json:
        click.echo(T.to_json(out))
        return
    click.echo(f"{len(lf):,} imported decisions ({lf.source}) with their four priority factors; re-arbitrating them "
               f"(priority = propensity × value × context weight × lever) reproduces the first action of "
               f"{lf.reproduced:,} of the {has:,} that chose one.")
    click.echo("No margin/retention sweep: the source's value does not split into margin and retention.")
    if "what_if" in out:
        w = out["what_if"]
        click.echo(f"\nWhat-if {', '.join(f'lever {k} = {v:g}' for k, v in levers.items())}: {w['changed']:.2%} of decisions "
                   "get another first action.")
        _echo_frame(w["by_action"][w["by_action"]["delta"] != 0].head(20))
    if "sensitivity" in out:
        click.echo("\nSensitivity (share of decisions whose first action changes):")
        _echo_frame(out["sensitivity"])


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--challenger", required=True, type=click.Path(dir_okay=False), help="Strategy file to compare.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@lang_option
def compare(db, challenger, as_json, lang) -> None:
    """Re-execute the logged inputs under a challenger strategy: which decisions change, and
    the expected KPI deltas by issue and channel."""
    from analysis import tradeoff as T
    from decisioning.strategy import load_strategy

    ch = load_strategy(challenger)
    with _read(db) as log:
        f = T.load_factors(log)
        with tqdm(total=len(f), desc="Re-deciding", unit=" decisions", file=sys.stderr, bar_format=_BAR) as bar:
            g = T.rerun(log, ch, f, progress=bar.update)
    res = T.compare(f, g)
    if as_json:
        click.echo(T.to_json(res))
        return
    from explain import i18n

    lg = i18n.language(lang)
    click.echo(_t("cli.compare_head", lang, changed=_n(res["changed_decisions"], lang), n=_n(res["decisions"], lang),
                  share=i18n.percent(res["changed"], lg, 2), name=ch.name, version=ch.version))
    for k in T.KPI_TABLE:
        click.echo(f"  {_t(f'kpi.{k.name}', lang):<26} {_n(res['champion'][k.name], lang, 1):>14} → "
                   f"{_n(res['challenger'][k.name], lang, 1):>14}")
    click.echo("\n" + _t("cli.compare_moves", lang))
    _echo_frame(res["moves"])
    click.echo("\n" + _t("cli.compare_segments", lang))
    _echo_frame(res["by_segment"])


def _ope_report(log, f, boot: int, seed: int, as_json: bool) -> None:
    from analysis import tradeoff as T

    rep = T.targeting_report(log, f, n_boot=boot, seed=seed)
    if as_json:
        click.echo(T.to_json(rep))
        return
    click.echo(f"Off-policy report over {len(f):,} logged decisions ({f.strategy.name}); 95% bootstrap intervals.")
    click.echo("\nObserved means per logged action (what IPS of 'everyone gets X' must agree with):")
    _echo_frame(rep["observed_by_logged_action"])
    click.echo("\nEstimated value per decision:")
    _echo_frame(rep["estimates"])
    click.echo("\nLift of the strategy's targeting over each fixed policy (IPS, paired bootstrap):")
    _echo_frame(rep["learned_lift"])


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--target", "target_path", default=None, type=click.Path(dir_okay=False),
              help="Target strategy file (else the what-if options below define the target).")
@_what_if_options
@click.option("--always", default=None, metavar="ACTION", help="Target: everyone gets ACTION.")
@click.option("--target-probabilities", "target_probs", default=None, type=click.Path(dir_okay=False),
              help="Target: a stochastic policy, a CSV/Parquet of action_id, probability (or decision_id, action_id, "
                   "probability). Works on any log, imported ones too.")
@click.option("--report", is_flag=True,
              help="Estimate the strategy's targeting and every 'everyone gets X' policy for all rewards, with lifts.")
@click.option("--reward", type=click.Choice(["conversion", "visit", "revenue", "margin", "retention"]),
              default="conversion", show_default=True)
@click.option("--boot", default=300, show_default=True, type=click.IntRange(0, 10_000), help="Bootstrap resamples.")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def ope(db, target_path, margin_weight, retention_weight, lever, threshold, top_n, always, target_probs, report, reward,
        boot, seed, as_json) -> None:
    """Off-policy evaluation: estimate a target strategy's value from logged, explored
    decisions (IPS, self-normalised IPS, doubly robust; bootstrap intervals)."""
    from analysis import tradeoff as T
    from decisioning.strategy import load_strategy

    setting = _setting(margin_weight, retention_weight, lever, threshold, top_n)
    if target_probs:
        target = T.read_target_probabilities(target_probs)
        with _read(db) as log:
            res = T.off_policy_probabilities(log, target, reward=reward, n_boot=boot, seed=seed)
        res["target"] = f"the stochastic policy in {target_probs}"
        _echo_ope(res, reward, as_json)
        return
    try:
        with _read(db) as log:
            f = T.load_factors(log)
            if report:
                _ope_report(log, f, boot, seed, as_json)
                return
            if always:
                if always not in f.strategy.action_ids:
                    raise KlartextError(f"Unknown action {always!r} in --always.",
                                        f"Use one of: {', '.join(f.strategy.action_ids)}.")
                target = np.full(len(f), f.strategy.action_index(always))
                label = f"everyone gets {always}"
            elif target_path:
                ch = load_strategy(target_path)
                with tqdm(total=len(f), desc="Re-deciding", unit=" decisions", file=sys.stderr, bar_format=_BAR) as bar:
                    target = T.challenger_targets(log, f, ch, progress=bar.update)
                label = f"{ch.name} ({ch.version})"
            else:
                target = T.first_actions(f, setting)
                label = "the what-if setting" if setting != T.Setting() else "the logged strategy (greedy)"
            res = T.off_policy(log, f, target, reward=reward, n_boot=boot, seed=seed)
    except ValueError as exc:
        _fail(KlartextError(str(exc), "Log decisions with exploration (strategy: exploration.epsilon > 0)."))
    res["target"] = label
    _echo_ope(res, reward, as_json)


def _echo_ope(res: dict, reward: str, as_json: bool) -> None:
    from analysis import tradeoff as T

    if as_json:
        click.echo(T.to_json(res))
        return
    label = res["target"]
    click.echo(f"Target: {label}; reward: {reward} per decision; {res['decisions_with_outcomes']:,} decisions with "
               f"outcomes, {res['explored_share']:.1%} of them explored.")
    click.echo(f"The target differs from what was served on {res['target_differs']:.1%} of them; "
               f"{res['supported']:.1%} of its choices had a positive logging probability.")
    if "warning" in res:
        click.echo(f"WARNING: {res['warning']}", err=True)
        click.echo(f"Estimates over the {res['decisions']:,} supported decisions only:" if res["scope"] == "supported"
                   else "Estimates (biased where the target lacks support, see the warning):")
    click.echo(f"Logged policy's observed value: {res['logging_policy_value']:.4f}")
    for k, e in res["estimates"].items():
        click.echo(f"  {k.upper():<6} {e['value']:.4f}   95% CI [{e['ci_low']:.4f}, {e['ci_high']:.4f}]   "
                   f"matched {e['matched']:,}, effective sample size {e['ess']:,.0f}")
    if "greedy_vs_explored_lift" in res:
        d = res["greedy_vs_explored_lift"]
        click.echo(f"Measured lift of greedy over randomly explored decisions: {d['value']:+.4f} "
                   f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--by", type=click.Choice(["stage", "group"]), default="stage", show_default=True,
              help="One row per stage, or per stage group (e.g. Pega's Stage_pyStageGroup).")
@click.option("--json", "as_json", is_flag=True, help="Print the funnel as JSON.")
@lang_option
def funnel(db: str, by: str, as_json: bool, lang: str | None) -> None:
    """Where candidate actions stop, and how many interactions reach each stage — in the
    flow's order (Klartext's stages, or an imported source's own, e.g. Pega's)."""
    import pandas as pd

    from decision_log import queries

    with _read(db) as log:
        df = queries.funnel(log.con.cursor(), by=by)
    if as_json:
        click.echo(df.to_json(orient="records", indent=2))
        return
    if df.empty:
        click.echo(_t("cli.no_decisions", lang))
        return
    from explain import i18n

    lg = i18n.language(lang)
    total = int(df["interactions_reaching"].max()) if df["interactions_reaching"].notna().any() else 0
    click.echo(_t(f"cli.funnel_head_{by}", lang, n=_n(total, lang)))
    labels = [i18n.stage_label(str(s), str(lab), lg, by) for s, lab in zip(df["stage"], df["label"])]
    width = max(len(x) for x in labels)
    for label, r in zip(labels, df.itertuples()):
        reach = ("" if pd.isna(r.interactions_reaching) else
                 f"{_n(int(r.interactions_reaching), lang):>12} {_t('cli.funnel_reach', lang)} "
                 f"({i18n.percent(r.reaching_share, lg):>7})")
        order = "" if pd.isna(r.stage_order) else f"[{int(r.stage_order)}]"
        click.echo(f"  {label:<{width}} {order:>8} {_n(r.rows, lang):>12} {_t('cli.funnel_rows', lang)}   {reach}")


@main.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log to import into (created if missing).")
@click.option("--format", "fmt", type=click.Choice(["generic", "pega-v1", "pega-v2"]), required=True,
              help="generic (docs/import.md), pega-v1 (explainability extract), pega-v2 (full-funnel export).")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=SOURCE",
              help="generic format: read COLUMN from the file's SOURCE column (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
def import_(files, db, fmt, maps, as_json) -> None:
    """Import decisions made by another system: funnel, grid, factors and KPI views work on
    them; they cannot be replayed (there is no strategy to re-execute)."""
    from dataclasses import asdict

    from decision_log.importers import import_file
    from decision_log.store import DecisionLog

    mapping = _pairs(maps, "--map", str)
    reports = []
    with _removed_on_failure(db), DecisionLog.open(db, wait_s=WAIT_S) as log:
        for path in files:
            with tqdm(total=1, desc=f"Importing {Path(path).name}", unit=" interactions", file=sys.stderr, bar_format=_BAR) as bar:
                def step(done: int, total: int, _bar=bar) -> None:
                    _bar.total = total
                    _bar.update(done - _bar.n)
                reports.append(import_file(log, fmt, path, mapping, progress=step))
    if as_json:
        click.echo(json.dumps([asdict(r) for r in reports], indent=2, default=str))
        return
    for r in reports:
        click.echo(f"{r.file}: {r.rows:,} rows → {r.decisions_added:,} decisions with {r.candidates_added:,} candidate "
                   f"rows added ({r.decisions_already_logged:,} already in the log) in {r.seconds:.1f} s."
                   + (f" {r.outcomes_added:,} outcomes added." if r.outcomes_added else ""))
        for note in r.notes:
            click.echo(f"  Note: {note}")
        if r.bad_rows:
            _echo_bad(r, f"{r.bad_rows:,} bad rows: their {r.decisions_left_out:,} interactions were left out whole")
        if r.format == "pega-v1":
            if r.inconsistent_rows:
                click.echo(f"  {r.inconsistent_rows:,} rows where Priority or pxRank disagree with the factors, e.g.:")
                for x in r.inconsistent_examples[:10]:
                    click.echo(f"    row {x['row']} ({x['interaction']}, {x['action']}): {x['problem']}")
            else:
                click.echo("  Priority = FinalPropensity × Value × ContextWeight × Weight and pxRank agree on every row.")


@contextmanager
def _removed_on_failure(db: str):
    """A log this command creates is removed again, with its pseudonym key, when the command
    fails: a failed import or run leaves nothing behind (an existing log is left as it was;
    each write into it is one transaction)."""
    from decision_log.pseudonyms import key_path

    fresh = not Path(db).exists()
    try:
        yield
    except BaseException:
        if fresh:
            for p in (Path(db), Path(db + ".wal"), key_path(db)):
                p.unlink(missing_ok=True)
        raise


def _echo_bad(report, headline: str) -> None:
    """An import's bad rows: file, row, column, value and what is wrong, the first ten."""
    click.echo(f"  {headline}, e.g.:")
    for b in report.bad_examples[:10]:
        click.echo(f"    {b.file} row {b.row}, column {b.column}: {b.value!r} is {b.problem}")


@main.command(name="import-outcomes")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log to add the outcomes to.")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=SOURCE",
              help="Read COLUMN (decision_id, action_id, outcome, revenue, margin, churned, ts) from SOURCE.")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
def import_outcomes_(files, db, maps, as_json) -> None:
    """Add what happened after decisions (accepted / rejected / ignored, or a click's 1 / 0;
    revenue, margin, churn) to any log — decisions made here or imported.  Outcomes are
    sealed; the same file twice adds nothing."""
    from dataclasses import asdict

    from decision_log.importers import import_outcomes
    from decision_log.store import DecisionLog

    mapping = _pairs(maps, "--map", str)
    reports = []
    with DecisionLog.open(db, create=False, wait_s=WAIT_S) as log:
        for path in files:
            reports.append(import_outcomes(log, path, mapping))
    if as_json:
        click.echo(json.dumps([asdict(r) for r in reports], indent=2, default=str))
        return
    for r in reports:
        click.echo(f"{r.file}: {r.rows:,} rows → {r.outcomes_added:,} outcomes added ({r.already_logged:,} logged "
                   f"already) in {r.seconds:.1f} s.")
        if r.bad_rows:
            _echo_bad(r, f"{r.bad_rows:,} rows left out")


@main.group()
def model() -> None:
    """Bring your own propensity models."""


@model.command("register")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--strategy", "strategy_path", default=None, type=click.Path(dir_okay=False),
              help="Strategy the model serves (default: the newest in the log).")
@click.option("--action", "action_id", required=True, help="Action whose propensity the model predicts.")
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="A fitted scikit-learn classifier or Pipeline saved with skops (skops.io.dump).")
@click.option("--features", default=None, help="Comma-separated input features (default: the model's own names).")
@click.option("--holdout", "holdout_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Held-out rows (CSV/Parquet: channel, the features, --label) to measure AUC, Brier score and "
                   "calibration on; stored with the model and shown on the Models page.")
@click.option("--label", default=None, help="The holdout's outcome column (1 / true = the predicted event).")
@click.option("--n-train", "n_train", default=None, type=click.IntRange(1), help="How many rows the model was fitted on.")
def model_register(db, strategy_path, action_id, model_path, features, holdout_path, label, n_train) -> None:
    """Register a fitted scikit-learn classifier or Pipeline as an action's propensity model.

    Decisions made afterwards (`klartext run`, `klartext decide`) use it, and explanations
    work under the original feature names: exact TreeSHAP for boosted trees (also at the end
    of a Pipeline), model-agnostic otherwise.
    """
    from decision_log.store import DecisionLog
    from decisioning.models import ModelSet, PropensityModel, load_artifact
    from decisioning.strategy import load_strategy

    blob = Path(model_path).read_bytes()  # the path exists (click checked it)
    try:
        est = load_artifact(blob, action_id)
    except KlartextError:
        raise
    except Exception as exc:  # skops refuses files it cannot read: say so plainly
        raise KlartextError(f"{model_path} could not be read as a skops model: {type(exc).__name__}: {exc}",
                            "Save the fitted estimator with skops.io.dump(model, 'model.skops').") from exc
    if strategy_path:
        strategy = load_strategy(strategy_path)
    else:  # the log's latest strategy: the log must exist
        with DecisionLog.open(db, read_only=True) as log:
            strategy = log.load_strategy(log.latest_strategy_version())
    feats = tuple(x.strip() for x in features.split(",")) if features else None
    m = PropensityModel.external(strategy, action_id, est, feats,
                                 training_fingerprint="sha256:" + hashlib.sha256(blob).hexdigest()[:16])
    if holdout_path:
        m.metrics.update(_holdout_metrics(strategy, m, holdout_path, label))
    if n_train:
        m.metrics["n_train"] = n_train
    with DecisionLog.open(db, wait_s=WAIT_S) as log:  # checked in full before the log is opened (or made) to write
        log.register_strategy(strategy)
        log.register_models(ModelSet({action_id: m}))
    kind = "exact TreeSHAP" if (m.log_odds_trees or m.pipeline_trees) else "model-agnostic SHAP"
    click.echo(f"Registered {type(est).__name__} as the model of {action_id} (version {m.version}); "
               f"features: {', '.join(m.features)}; explanations: {kind}.")
    if holdout_path:
        auc = m.metrics.get("auc")
        click.echo(f"On {m.metrics['n_test']:,} held-out rows: AUC {'—' if auc is None else f'{auc:.3f}'}, Brier score "
                   f"{m.metrics['brier']:.4f}, calibration error {m.metrics['ece']:.4f}"
                   + (f"; fitted on {n_train:,} rows." if n_train else "."))


def _holdout_metrics(strategy, model, path: str, label: str | None) -> dict:
    """AUC, Brier score and calibration of ``model`` on a held-out table."""
    import pandas as pd

    from decisioning.errors import InputError
    from decisioning.inputs import Requests
    from decisioning.models import evaluate, model_matrix

    if not label:
        raise InputError("--holdout needs --label: the column that says whether the predicted event happened.",
                         "e.g. --label accepted")
    frame = pd.read_parquet(path) if path.lower().endswith(".parquet") else pd.read_csv(path)
    if label not in frame.columns:
        raise InputError(f"{path}: the label column {label!r} is missing.", f"The table has: {', '.join(frame.columns)}.")
    y = frame[label]
    words = {"1": 1, "0": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0}
    yv = y.astype(str).str.strip().str.lower().map(words)
    if yv.isna().any():
        r = int(yv.isna().to_numpy().argmax())
        raise InputError(f"{path} row {r + 1}: label {y.iloc[r]!r} is not 1 / 0 or true / false.",
                         "Give the outcome of every held-out row as 1 or 0.")
    if "customer_id" not in frame.columns:
        frame = frame.assign(customer_id=[f"holdout-{i}" for i in range(len(frame))])
    req = Requests.from_frame(strategy, frame)
    p = model.predict(model_matrix(strategy, req, model.features))
    return evaluate(yv.to_numpy(dtype=np.int64), p)


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True,
              help="Decision log to write (DuckDB file, or a log directory: LOGDIR/log.duckdb and its shards).")
@click.option("--strategy", "strategy_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Your strategy file (YAML). Default: the version deciding now (`klartext strategy status`), "
                   "with its canary if one runs.")
@click.option("--customers", "customers_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Customer table (CSV or Parquet; Parquet for --engine spark): customer_id, channel and every "
                   "strategy feature.")
@click.option("--channel", default=None, help="Channel for every row when the table has no channel column.")
@click.option("--id-column", default="customer_id", show_default=True, help="The table's customer id column.")
@click.option("--channel-column", default="channel", show_default=True, help="The table's channel column.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: this process; spark: Apache Spark, one shard of the log per partition.")
@click.option("--master", default="local[2]", show_default=True,
              help="With --engine spark: the Spark master (local[N] on this machine, spark://host:7077, …).")
@click.option("--partition-mb", default=None, type=click.FloatRange(min=0.01),
              help="With --engine spark: the largest slice of the input one partition reads, in MB "
                   "(spark.sql.files.maxPartitionBytes; default 8, about 250,000 customers: a partition's memory "
                   "stays bounded).")
def run(db, strategy_path, customers_path, channel, id_column, channel_column, engine, master, partition_mb) -> None:
    """Decide for every customer of a table with your strategy and the registered models, and log it.

    Where the log's strategy is managed (`klartext strategy`), the active version decides, and
    a canary's customers get the canary's version.  With --engine spark, Spark decides the
    table's partitions side by side and each writes one Parquet shard of the log; the
    decisions are the same as this process would make (`docs/scale.md`)."""
    from decisioning.strategy import load_strategy
    from klartext import batch

    strategy = load_strategy(strategy_path) if strategy_path else None
    plan = batch.Plan.now(id_column=id_column, channel_column=channel_column, channel=channel)
    if engine == "spark":
        from klartext import spark

        bar = None

        def partitions(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="Deciding and logging", unit=" partitions", file=sys.stderr,
                           bar_format=_BAR)
            bar.update(done - bar.n)

        try:
            res = spark.run_spark(db, customers_path, strategy, plan, master, partition_mb=partition_mb,
                                  wait_s=WAIT_S, progress=lambda msg: click.echo(msg + " …", err=True),
                                  partitions_done=partitions)
        finally:
            if bar is not None:
                bar.close()
    else:
        table = batch.Table(customers_path)  # read, checked and decided in slices: memory stays bounded
        with tqdm(total=table.rows, desc="Deciding and logging", unit=" decisions", file=sys.stderr,
                  bar_format=_BAR) as bar:
            def logged(n: int) -> None:
                if bar.total is None:  # a CSV's length is known once it was checked (read through)
                    bar.total = table.rows
                bar.update(n)

            res = batch.run_local(db, table, strategy, plan, on_logged=logged, wait_s=WAIT_S)
    if len(res.versions) == 1:
        name, version, _ = res.versions[0]
        click.echo(f"Logged {res.decisions:,} decisions of {name} ({version}) to {db}"
                   + (f" in {len(res.shards)} shard(s) ({res.decisions / res.seconds:,.0f} decisions/s)"
                      if res.shards else "") + ". Most chosen:")
    else:
        versions = ", ".join(f"{n} ({v}): {k:,}" for n, v, k in res.versions)
        click.echo(f"Logged {res.decisions:,} decisions to {db} — {versions}. Most chosen:")
    for a, k in res.chosen.head(8).items():
        click.echo(f"  {a:<30} {k:>8,}  ({k / res.decisions:.1%})")


def _not_hours(value: float):
    raise click.BadParameter(f"{value} is not a number of hours; give a finite one (24: daily), or 0 to rotate by "
                             "size only.")


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--strategy", "strategy_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Strategy to serve (default: the version deciding now; its models must be registered). Where the "
                   "strategy is managed (`klartext strategy`), leave it out: the service follows each activation and "
                   "rollback.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--max-queue", default=2000, show_default=True, type=click.IntRange(1),
              help="Requests waiting to be decided before new ones get 503.")
@click.option("--users", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Users file (`klartext user add`): every request must sign in (HTTP Basic). Required "
                   "unless --host is a loopback address.")
@click.option("--auth-header", default=None, metavar="NAME",
              help="A header your reverse proxy sets to the signed-in user's name (trusted: the proxy must "
                   "strip it from clients' requests).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Service processes sharing the port, each logging into a file of its own (sealed into shards "
                   "when the service stops; see docs/scale.md). 1: one process holds the log file.")
@click.option("--rotate-after", default=1_000_000, show_default=True, type=click.IntRange(0), metavar="DECISIONS",
              help="With --workers: seal a worker's file into a shard once it holds this many decisions, one "
                   "worker at a time while the others answer (0: only when the service stops).")
@click.option("--rotate-every", default=24.0, show_default=True, type=click.FloatRange(0), metavar="HOURS",
              callback=lambda _ctx, _param, v: v if math.isfinite(v) else _not_hours(v),
              help="With --workers: seal a worker's file into a shard once it is this old (0: never by age).")
def serve(db, strategy_path, host, port, max_queue, users, auth_header, workers, rotate_after, rotate_every) -> None:
    """The real-time decision API: POST /decide, POST /outcome, GET /decisions/{id}, GET /health
    (OpenAPI at /docs). A response is sent only after its decision is durable in the log; each
    answer names the strategy version that decided it, and the service follows the lifecycle's
    activations and rollbacks (`klartext strategy`) without a restart."""
    import uvicorn

    from klartext.access import require_auth_beyond_loopback
    from klartext.serve import create_app

    if not Path(db).exists():
        _fail(KlartextError(f"No decision log at {db!r}.",
                            f"Create one with `klartext demo --db {db}` (it trains and registers the models)."))
    require_auth_beyond_loopback(host, users, auth_header, "The service")
    if workers > 1:
        from klartext.workers import Supervisor

        try:
            Supervisor(db, strategy_path, host, port, workers, say=click.echo, max_queue=max_queue, users=users,
                       auth_header=auth_header, rotate_after=rotate_after or None,
                       rotate_every_s=rotate_every * 3600 if rotate_every else None).run()
        except KlartextError as exc:
            _fail(exc)
        return
    app = create_app(db, strategy_path, max_queue=max_queue, users=users, auth_header=auth_header, freeze_gc=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.group()
def user() -> None:
    """Users of the dashboard and the service (a users file with hashed passwords)."""


@user.command("add")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False), help="The users file (created if missing).")
@click.option("--name", required=True, help="User name (letters, digits, . _ @ -).")
@click.option("--role", required=True, type=click.Choice(["viewer", "reviewer", "decider", "admin"]),
              help="viewer: aggregates; reviewer: + single decisions and customers; decider: the service's "
                   "/decide and /outcome; admin: everything.")
@click.option("--proxy-only", is_flag=True, help="No password: the user signs in only through --auth-header.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def user_add(path: str, name: str, role: str, proxy_only: bool, password_stdin: bool) -> None:
    """Add (or replace) a user; the password is stored as a scrypt hash, never in clear."""
    from klartext.access import add_user

    password = None
    if not proxy_only:
        password = sys.stdin.readline().rstrip("\n") if password_stdin else \
            click.prompt("Password", hide_input=True, confirmation_prompt=True)
    add_user(path, name, role, password)
    click.echo(f"{name} ({role}) is in {path}.")


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@lang_option
def decisions(db: str, limit: int, lang: str | None) -> None:
    """List the newest decisions of a log."""
    from decision_log import queries

    with _read(db) as log:
        df = queries.recent_decisions(log.con.cursor(), limit)
    if df.empty:
        click.echo(_t("cli.no_decisions", lang))
        return
    for r in df.itertuples():
        chosen = r.chosen_action if isinstance(r.chosen_action, str) else _t("cli.no_action", lang)
        click.echo(f"{r.decision_id}  {r.ts:%Y-%m-%d %H:%M}  {r.channel:<11}  {chosen}")


# -- compliance: erasure, objections, the access log ------------------------------------------

def _actor(by: str | None) -> str:
    """Who runs a command, for the register: --by, else $KLARTEXT_USER, else the login name."""
    import getpass

    return by or os.environ.get("KLARTEXT_USER") or getpass.getuser()


def _viewed(log, decision_id: str, by: str | None = None) -> None:
    """Record that this command shows one decision (before it is shown)."""
    found = log.con.execute("SELECT customer FROM decisions WHERE decision_id = ?", [decision_id]).fetchall()
    record_access(log, "decision", decision_id, customer=found[0][0] if found else None, by=by)


def record_access(log, what: str, target: str | None, customer: str | None = None, by: str | None = None,
                  why: str | None = None) -> None:
    """Record in the log's compliance register that this command showed ``what``."""
    with log.register() as reg:
        reg.record_access(_actor(by), "cli", what, target, customer=customer, why=why)


@main.command()
@click.argument("customer")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--by", "by", default=None, help="Who erases (default: $KLARTEXT_USER, else your login name).")
@click.option("--reference", default=None, help="The request's reference, e.g. the ticket of the customer's request.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(customer: str, db: str, by: str | None, reference: str | None, yes: bool) -> None:
    """Erase a customer at their request (GDPR Art. 17): destroy the key their inputs are sealed
    under.  The log's bytes and hash chain stay as they are, `verify` still passes, funnels and
    KPIs still count the decisions; nobody can read the customer's inputs again.

    CUSTOMER is the raw customer id the decisions were requested with.
    """
    from decision_log import erasure

    if not yes:
        click.confirm(f"Erase customer {customer!r} for good? Their inputs cannot be read again afterwards.",
                      abort=True, err=True)
    with _read(db) as log:
        done = erasure.erase(log, customer, _actor(by), "cli", reference)
    click.echo(f"Erased customer {done.customer[:12]}… (pseudonym) on {done.erased_at:%Y-%m-%d %H:%M} UTC: "
               f"{done.decisions:,} decision(s) about them, {done.sealed:,} with inputs sealed under the destroyed "
               f"key{'' if done.key_fingerprint else ' (no key was left: erased before, or never sealed)'}. "
               f"Recorded in {db}.compliance.duckdb.")


@main.command(name="object")
@click.argument("customer")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--channels", default=None, help="Only these channels, comma-separated (default: every channel).")
@click.option("--withdraw", is_flag=True, help="The customer withdraws their objection.")
@click.option("--by", "by", default=None, help="Who records it (default: $KLARTEXT_USER, else your login name).")
@click.option("--note", default=None, help="A note, e.g. how the customer objected.")
def object_(customer: str, db: str, channels: str | None, withdraw: bool, by: str | None, note: str | None) -> None:
    """Record a customer's objection to direct marketing (GDPR Art. 21(2)-(3)).  Every later
    decision removes each marketing action for them at the eligibility stage with the rule
    `objection` (a running `klartext serve` follows within a second).

    CUSTOMER is the raw customer id.
    """
    chans = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    with _read(db) as log:
        if chans:
            known = set()
            for sv in log.con.execute("SELECT version FROM strategies").fetchall():
                known |= set(log.load_strategy(sv[0]).channel_ids)
            bad = [c for c in chans if known and c not in known]
            if bad:
                raise KlartextError(f"--channels: {bad[0]!r} is not a channel of this log's strategies.",
                                    f"Channels: {', '.join(sorted(known))}.")
        pseudo = str(log.pseudonymise([customer])[0])
        with log.register() as reg:
            when = reg.record_objection(pseudo, chans, _actor(by), "cli", note, withdrawn=withdraw)
    what = "withdrawn" if withdraw else "recorded"
    where = ", ".join(chans) if chans else "every channel"
    click.echo(f"Objection to direct marketing ({where}) {what} for customer {pseudo[:12]}… (pseudonym) on "
               f"{when:%Y-%m-%d %H:%M} UTC.")


@main.command()
@click.argument("decision_id", required=False)
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--status", type=click.Choice(["reviewed", "contested", "upheld", "overridden"]), default=None,
              help="Mark the decision (with DECISION_ID); without it: list the decisions whose latest review has it.")
@click.option("--comment", default=None, help="What the reviewer found, or what the customer contests.")
@click.option("--by", "by", default=None, help="The reviewer (default: $KLARTEXT_USER, else your login name).")
def review(decision_id: str | None, db: str, status: str | None, comment: str | None, by: str | None) -> None:
    """A person's review of an automated decision (GDPR Art. 22(3)): mark it reviewed,
    contested, upheld or overridden, with a comment.  Reviews are append-only and sealed; the
    latest one is the decision's status, and every one is in the decision's evidence file.
    Without DECISION_ID: the review queue (decisions whose latest review has --status,
    default contested).

    DECISION_ID is a decision's id, the start of one, or `latest` (the newest).
    """
    with _read(db) as log:
        if decision_id is None:
            with log.register() as reg:
                reg.record_access(_actor(by), "cli", "review", None, why=f"queue: {status or 'contested'}")
                df = reg.reviews(status=status or "contested")
            latest = df.groupby("decision_id").tail(1)
            if latest.empty:
                click.echo(f"No decision whose latest review is {status or 'contested'}.")
            for r in latest.itertuples():
                click.echo(f"{r.decision_id}  {r.ts:%Y-%m-%d %H:%M}  {r.status:<10}  {r.reviewer:<16} "
                           f"{r.comment if isinstance(r.comment, str) else ''}")
            return
        if status is None:
            raise KlartextError("--status is missing.", "Mark the decision reviewed, contested, upheld or overridden.")
        decision_id = _decision_id(log, decision_id)
        customer = log.con.execute("SELECT customer FROM decisions WHERE decision_id = ?", [decision_id]).fetchall()[0][0]
        with log.register() as reg:
            when = reg.record_review(decision_id, customer, status, _actor(by), comment)
            reg.record_access(_actor(by), "cli", "review", decision_id, customer=customer)
    click.echo(f"Decision {decision_id} marked {status} by {_actor(by)} on {when:%Y-%m-%d %H:%M} UTC (sealed in "
               f"{db}.compliance.duckdb).")


@main.command()
@click.argument("customer")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write it: FILE.pdf, FILE.html (printable page) or FILE.json.")
@click.option("--lang", type=click.Choice(["en", "de"]), default=None, help="Language (default: $KLARTEXT_LANG, else en).")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD; default: the first decision).")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD; default: the newest decision).")
@click.option("--no-access", is_flag=True, help="Leave out who at the organisation looked at the customer's data.")
@click.option("--contact", default=None, help="How the customer reaches you, printed under their rights.")
@click.option("--by", "by", default=None, help="Who makes it (default: $KLARTEXT_USER, else your login name).")
def subject(customer: str, db: str, out: str, lang: str | None, start: str | None, end: str | None, no_access: bool,
            contact: str | None, by: str | None) -> None:
    """The customer's own explanation (GDPR Art. 15(1)(h), AI Act Art. 86): every decision about
    them in the period, the main reasons in plain words, the data used, what they can do, and
    who looked at their data — written for the customer, in German or English.

    CUSTOMER is the raw customer id.
    """
    from explain import i18n
    from explain import subject as subj
    from explain.api import Explainer

    _export_kind(out)
    lg = i18n.language(lang)
    first, last = subj.parse_day(start, "--from"), subj.parse_day(end, "--to")
    with _read(db) as log:
        rep = subj.subject_report(log, Explainer(log), customer, lg, _actor(by), start=first, end=last,
                                  with_access=not no_access, contact=contact)
    data = _export(out, subj, rep)
    click.echo(f"Explanation for customer {customer}: {len(rep['decisions']):,} decision(s), written to {out} "
               f"({len(data) / 1024:,.0f} KB).")


@main.command(name="access-log")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--customer", default=None, help="Only accesses to this customer's data (raw id).")
@click.option("--user", "user", default=None, help="Only accesses by this person.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--json", "as_json", is_flag=True)
@click.option("--by", "by", default=None, help="Who reads it (default: $KLARTEXT_USER, else your login name).")
def access_log(db: str, customer: str | None, user: str | None, limit: int, as_json: bool, by: str | None) -> None:
    """Who looked at what: every view of a decision, a customer's history, a subject export
    or an erasure, from the dashboard, the CLI or the API (newest first).  Reading it is
    recorded too."""
    with _read(db) as log:
        pseudo = str(log.pseudonymise([customer])[0]) if customer else None
        with log.register() as reg:
            reg.record_access(_actor(by), "cli", "access_log", pseudo, customer=pseudo)
            df = reg.access_log(customer=pseudo, actor=user, limit=limit)
    if as_json:
        click.echo(df.assign(ts=df["ts"].astype(str)).to_json(orient="records", force_ascii=False))
        return
    for r in df.itertuples():
        click.echo(f"{r.ts:%Y-%m-%d %H:%M:%S}  {r.actor:<16} {r.via:<9} {r.what:<14} "
                   f"{r.target[:36] if isinstance(r.target, str) else '':<36}"
                   f"{'  why: ' + r.why if isinstance(r.why, str) else ''}")


def _day_or_days_ago(text: str, opt: str):
    """A day given as YYYY-MM-DD, or as ``Nd`` (N days before today, UTC)."""
    import re
    from datetime import UTC, date, datetime, timedelta

    m = re.fullmatch(r"\s*(\d{1,5})\s*d\s*", text)
    if m:
        return datetime.now(UTC).date() - timedelta(days=int(m.group(1)))
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise KlartextError(f"{opt} {text!r} is not a date.",
                            "Write it as YYYY-MM-DD (e.g. 2026-06-01) or as days ago (e.g. 180d).") from None


@main.command()
@click.option("--before", required=True,
              help="Archive the decisions made before this day: YYYY-MM-DD (UTC), or N days ago as Nd (180d: "
                   "keep six months in the file).")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file, or a log directory).")
@lang_option
def archive(before: str, db: str, lang: str | None) -> None:
    """Seal old decisions into a Parquet shard beside the log, and take them out of its file.

    The shard (``<log>.shards/NNNNNN/``: decisions, candidates, chain and outcomes as plain
    Parquet, readable by DuckDB, Spark, polars or pandas without Klartext) continues the
    hash chain, and the log seals its place in the shard manifest: `klartext verify` checks
    the file and every shard as one log, and every command reads them as one.
    """
    from datetime import UTC, datetime

    from decision_log.store import DecisionLog

    day = _day_or_days_ago(before, "--before")
    cut = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with DecisionLog.open(db, create=False, wait_s=WAIT_S) as log:
        for s in log.seal_workers():  # what a stopped service's workers left comes first
            click.echo(f"Shard {s.name}: {s.decisions:,} decisions of a stopped service's worker sealed")
        shard = log.archive(cut)
        if shard is None:
            click.echo(_t("cli.archive_nothing", lang, db=db, day=day.isoformat()))
            return
        first, last = log.con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM decisions").fetchall()[0]
        left = log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
        path = log.manifest.root / shard.name
    size = sum(f.stat().st_size for f in path.iterdir())
    click.echo(_t("cli.archive_done", lang, n=_n(shard.decisions, lang), lo=_n(shard.first_seq, lang),
                  hi=_n(shard.last_seq, lang), path=str(path), mb=f"{size / 1e6:.1f}", left=_n(left, lang),
                  since=str(first) if first else "—"))


@main.command()
@click.option("--before", required=True,
              help="Purge the decisions made before this day: YYYY-MM-DD (UTC), or N days ago as Nd (e.g. 365d).")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file, or a log directory).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The signing key from `klartext keygen`: the purge record is signed with it.")
@click.option("--by", "by", default=None, help="Who purges (default: $KLARTEXT_USER, else your login name).")
@click.option("--reason", required=True, help="Why, e.g. the retention rule that applies.")
@click.option("--allow-under-six-months", is_flag=True,
              help="Also purge decisions younger than six months (the AI Act's Art. 19 minimum): say why in --reason.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@lang_option
def purge(before: str, db: str, key_path: str, by: str | None, reason: str, allow_under_six_months: bool,
          yes: bool, lang: str | None) -> None:
    """Delete decisions past their retention period, leaving a signed record of what was purged.

    Whole shards go (the file's own older decisions are archived into one first); the purge
    record — who, when, why, and each shard's positions, counts and chain link, signed with
    your key — is sealed into the log, so `klartext verify` tells the purge from a deletion.
    """
    from datetime import UTC, datetime

    from decision_log import checkpoints
    from decision_log.store import DecisionLog

    day = _day_or_days_ago(before, "--before")
    cut = datetime(day.year, day.month, day.day, tzinfo=UTC)
    key = checkpoints.load_private(key_path)
    if not yes:
        click.confirm(f"Delete every decision of {db} made before {day} for good (whole shards)?", abort=True,
                      err=True)
    with DecisionLog.open(db, create=False, wait_s=WAIT_S) as log:
        record = log.purge(cut, key, _actor(by), reason, allow_under_six_months)
    if record is None:
        click.echo(_t("cli.purge_nothing", lang, db=db, day=day.isoformat()))
        return
    click.echo(_t("cli.purge_done", lang, n=_n(record["decisions"], lang), k=len(record["shards"]),
                  lo=_n(record["shards"][0]["first_seq"], lang), hi=_n(record["shards"][-1]["last_seq"], lang),
                  key=record["public_key"][:16]))


def _add_lifecycle() -> None:
    from klartext.strategy_cli import strategy

    main.add_command(strategy)


_add_lifecycle()

if __name__ == "__main__":  # pragma: no cover
    main()
