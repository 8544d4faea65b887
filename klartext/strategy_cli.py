"""``klartext strategy …``: propose, simulate, approve, activate, roll back — every step sealed.

The steps are recorded in the log's compliance register (:mod:`decision_log.lifecycle`), a
file of its own, so they can be taken while ``klartext serve`` holds the log: the service
follows the active version within seconds.
"""

from __future__ import annotations

import json
import sys

import click
from tqdm import tqdm

from decisioning.errors import InputError, KlartextError

# (``klartext.cli`` adds this group to itself; its helpers are imported inside the commands,
# so that ``python -m klartext.cli`` does not import it twice)
DEFAULT_DB = "klartext_demo.duckdb"
lang_option = click.option("--lang", type=click.Choice(["en", "de"]), default=None,
                           help="Language of the messages (default: $KLARTEXT_LANG, else en).")


def _cli():
    from klartext import cli

    return cli


def _t(key: str, lang: str | None, **values) -> str:
    return _cli()._t(key, lang, **values)


def _n(x: float, lang: str | None, decimals: int = 0) -> str:
    return _cli()._n(x, lang, decimals)


def _read(db: str):
    return _cli()._read(db)


def _actor(by: str | None) -> str:
    return _cli()._actor(by)


def _short(v: str | None) -> str:
    return (v or "—")[:8]


def _name(log, st, version: str | None) -> str:
    from decision_log.lifecycle import strategy_of

    if version is None:
        return "—"
    try:
        return strategy_of(log, st, version).name
    except KlartextError:
        return "?"


def _deciding(log) -> str:
    """The version deciding in a log without a lifecycle: its newest decision's, else its newest strategy."""
    from decision_log import queries

    return queries.newest_strategy_version(log.con.cursor()) or log.latest_strategy_version()


@click.group()
def strategy() -> None:
    """The strategy lifecycle: propose → simulate → approve → activate (canary) → rollback,
    each step sealed in the compliance register with who, when and why."""


@strategy.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--by", default=None, help="Who proposes it (default: $KLARTEXT_USER, else your login name).")
@click.option("--note", default=None, help="Why (kept with the step).")
@lang_option
def propose(file: str, db: str, by: str | None, note: str | None, lang: str | None) -> None:
    """Propose a strategy file as the next version (checked: valid, and the log has a model
    for every action it scores)."""
    from decision_log import lifecycle
    from decisioning.engine import Engine
    from decisioning.strategy import load_strategy

    s = load_strategy(file)
    with _read(db) as log:
        champion = _deciding(log)
        e = Engine(s, log.latest_models_for(s))  # every action has a model, and the models fit its features
        e.prepare()
        with log.register() as reg:
            step = lifecycle.propose(reg, s, champion, _actor(by), "cli", note)
    click.echo(_t("lifecycle.cli.proposed", lang, name=s.name, version=s.version, base=step.base_version,
                  short=s.version[:8], db=db))


@strategy.command()
@click.argument("version")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--decisions", default=50_000, show_default=True, type=click.IntRange(100),
              help="Re-decide this many of the newest decisions of the version deciding now.")
@click.option("--boot", default=300, show_default=True, type=click.IntRange(50, 10_000),
              help="Bootstrap resamples of the off-policy intervals.")
@click.option("--by", default=None, help="Who runs it (default: $KLARTEXT_USER, else your login name).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored figures as JSON.")
@lang_option
def simulate(version: str, db: str, decisions: int, boot: int, by: str | None, as_json: bool, lang: str | None) -> None:
    """Simulate a proposal against the version deciding now — champion/challenger on the
    logged inputs and off-policy estimates — and store the figures with the proposal."""
    from analysis import lifecycle as L
    from decision_log import lifecycle
    from explain import i18n

    with _read(db) as log:
        st = lifecycle.current(log)
        v = lifecycle.find(st, version)
        if v not in st.texts:
            raise InputError(f"Version {v} was not proposed; only proposals are simulated.",
                             "`klartext strategy status` lists the proposals.")
        proposal = lifecycle.strategy_of(log, st, v)
        total = min(decisions, log.con.cursor().execute(
            "SELECT count(*) FROM decisions WHERE strategy_version = ?", [st.champion]).fetchall()[0][0])
        with tqdm(total=total, desc="Re-deciding", unit=" decisions", file=sys.stderr, bar_format=_cli()._BAR) as bar:
            res = L.simulate(log, st.champion, proposal, decisions=decisions, n_boot=boot, progress=bar.update)
        with log.register() as reg:
            lifecycle.record_simulation(reg, v, res, _actor(by), "cli")
    if as_json:
        click.echo(json.dumps(res, indent=2, default=str))
        return
    lg = i18n.language(lang)
    click.echo(_t("lifecycle.cli.simulated", lang, version=_short(v), base=_short(res["champion"]),
                  n=_n(res["decisions"], lang), changed=i18n.percent(res["changed"], lg, 1)))
    for reward, r in res["off_policy"].items():
        label = _t(f"lifecycle.reward.{reward}", lang)
        if "refused" in r:
            click.echo(_t("lifecycle.cli.ope_unreliable", lang, reward=label, why=r["refused"]))
            continue
        e = r["estimates"].get("snips") or next(iter(r["estimates"].values()))
        click.echo(_t("lifecycle.cli.ope", lang, reward=label, now=i18n.significant(r["logging_policy_value"], lg),
                      value=i18n.significant(e["value"], lg), low=i18n.significant(e["ci_low"], lg),
                      high=i18n.significant(e["ci_high"], lg), support=i18n.percent(r["supported"], lg, 1)))
        if not r["reliable"]:
            click.echo(_t("lifecycle.cli.ope_unreliable", lang, reward=label, why=r.get("warning", "")), err=True)
    if res.get("off_policy_note"):
        click.echo(res["off_policy_note"])
    for c in res["changes"]:
        click.echo(f"  {c['field']}: {c['before']} → {c['after']}")


@strategy.command()
@click.argument("version")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--by", required=True, help="Who approves it (not the person who proposed it).")
@click.option("--note", required=True, help="Why it is approved.")
@lang_option
def approve(version: str, db: str, by: str, note: str, lang: str | None) -> None:
    """Approve a simulated proposal (refused without a simulation against the version
    deciding now, and to the person who proposed it)."""
    from decision_log import lifecycle

    with _read(db) as log, log.register() as reg:
        v = lifecycle.find(lifecycle.state(reg), version)
        lifecycle.approve(reg, v, by, "cli", note)
    click.echo(_t("lifecycle.cli.approved", lang, version=v, by=by, short=v[:8], db=db))


@strategy.command()
@click.argument("version")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--share", default=1.0, show_default=True, type=float,
              help="Share of customers (0–1] that get it; below 1 a canary, chosen by a keyed hash of the customer.")
@click.option("--by", default=None, help="Who activates it (default: $KLARTEXT_USER, else your login name).")
@click.option("--note", default=None, help="Why (kept with the step).")
@lang_option
def activate(version: str, db: str, share: float, by: str | None, note: str | None, lang: str | None) -> None:
    """Let an approved version decide: for a share of customers (a canary), or for all."""
    from decision_log import lifecycle
    from explain import i18n

    with _read(db) as log, log.register() as reg:
        v = lifecycle.find(lifecycle.state(reg), version)
        step = lifecycle.activate(reg, v, share, _actor(by), "cli", note)
    if share < 1:
        click.echo(_t("lifecycle.cli.activated_canary", lang, version=v,
                      share=i18n.percent(share, i18n.language(lang), 1), base=step.base_version))
    else:
        click.echo(_t("lifecycle.cli.activated_full", lang, version=v, base=step.base_version))


@strategy.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--by", default=None, help="Who rolls back (default: $KLARTEXT_USER, else your login name).")
@click.option("--note", required=True, help="Why.")
@lang_option
def rollback(db: str, by: str | None, note: str, lang: str | None) -> None:
    """End the canary, or — without one — restore the version before the last activation."""
    from decision_log import lifecycle

    with _read(db) as log, log.register() as reg:
        step = lifecycle.rollback(reg, _actor(by), "cli", note)
    click.echo(_t("lifecycle.cli.rolled_back", lang, version=step.version, base=step.base_version))


@strategy.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--json", "as_json", is_flag=True, help="Print the state and every step as JSON.")
@lang_option
def status(db: str, as_json: bool, lang: str | None) -> None:
    """What decides now (and for which share), and the sealed record of every step."""
    from decision_log import lifecycle
    from explain import i18n

    lg = i18n.language(lang)
    with _read(db) as log:
        st = lifecycle.current(log)
        if as_json:
            out = lifecycle.describe(st)
            out["versions"] = [{"version": v, "name": _name(log, st, v), "status": st.status(v)} for v in st.versions()]
            out["record"] = [{"ts": s.ts.isoformat(), "step": s.step, "version": s.version, "actor": s.actor,
                              "via": s.via, "note": s.note, "share": s.share, "against": s.base_version}
                             for s in st.steps]
            click.echo(json.dumps(out, indent=2))
            return
        if not st.managed:
            click.echo(_t("lifecycle.cli.unmanaged", lang, db=db, version=_deciding(log)))
            return
        since = f"{st.since:%Y-%m-%d %H:%M} UTC"
        if st.canary:
            click.echo(_t("lifecycle.cli.champion_rest", lang, name=_name(log, st, st.champion), version=st.champion))
            click.echo(_t("lifecycle.cli.canary", lang, name=_name(log, st, st.canary), version=st.canary,
                          share=i18n.percent(st.share, lg, 1), since=since))
        else:
            click.echo(_t("lifecycle.cli.champion", lang, name=_name(log, st, st.champion), version=st.champion,
                          since=since))
        click.echo("\n" + _t("lifecycle.cli.trail", lang, n=_n(len(st.steps), lang)))
        for s in st.steps:
            share = f" {i18n.percent(s.share, lg, 1)}" if s.step == "activated" and s.share is not None else ""
            click.echo(f"  {s.ts:%Y-%m-%d %H:%M:%S}  {_t('lifecycle.step.' + s.step, lang):<16} {_short(s.version)}"
                       f"{share:<8} {s.actor:<14} {s.note or ''}")


@strategy.command()
@click.argument("old")
@click.argument("new")
@click.option("--db", default=DEFAULT_DB, show_default=True, help="Decision log (DuckDB file).")
@click.option("--json", "as_json", is_flag=True)
@lang_option
def diff(old: str, new: str, db: str, as_json: bool, lang: str | None) -> None:
    """Field by field, what changes from version OLD to NEW (weights, levers, thresholds,
    rules, context weights, actions, contact limits, exploration, models, disclosure)."""
    from analysis import lifecycle as L
    from decision_log import lifecycle

    with _read(db) as log:
        st = lifecycle.current(log)
        a, b = (lifecycle.find(st, x) if st.managed else x for x in (old, new))
        rows = L.diff(log, st, a, b)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo(_t("lifecycle.cli.no_changes", lang))
    for r in rows:
        click.echo(f"  {r['field']:<48} {r['before']!s:>24} → {r['after']!s}")
