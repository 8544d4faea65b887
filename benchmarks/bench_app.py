"""Benchmark: the dashboard's queries and figures on a large log.

Builds a demo log of ``--decisions`` decisions (1,000,000 by default; 29 candidate rows each)
unless ``--db`` names an existing one, then times, per page, exactly the queries and figure
builders that page runs for its first view (no Streamlit caching), plus the interactions a
user makes (pick a decision, switch the why-not action, filter a channel).  The in-run
baselines are a bare ``count(*)`` over the same tables and, with ``--compare-rows``, the pages
that read the write-time summaries timed again with the summaries turned off (computed from
the rows of the same file).  Prints one JSON object; the target is every interaction within 1 s.

Usage: ``python benchmarks/bench_app.py [--decisions 1000000] [--db PATH] [--repeat 3] [--compare-rows]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from decision_log import explanations as store
from decision_log import integrity, queries
from decision_log.replay import replay
from decision_log.store import DecisionLog
from explain import figures
from explain.api import Explainer
from explain.reasons import feature_phrase
from klartext.jobs import run_demo


def interactions(log: DecisionLog, ex: Explainer) -> dict:
    con = log.con.cursor()
    strategy = log.load_strategy(log.latest_strategy_version())
    ch = queries.choices(con)
    f = queries.Filters(ch["first"], ch["last"])
    f_email = queries.Filters(ch["first"], ch["last"], ("email",))
    newest = queries.find_decisions(con, f=f, limit=200)["decision_id"].iloc[0]
    with_action = con.execute("SELECT decision_id FROM decisions WHERE chosen_action IS NOT NULL "
                              "ORDER BY seq DESC LIMIT 1 OFFSET 7").fetchall()[0][0]
    actions = pd.DataFrame({"action_id": [a.id for a in strategy.actions],
                            "net_margin": [a.margin - a.incentive_cost for a in strategy.actions],
                            "retention_effect": [a.retention_effect for a in strategy.actions]})

    def overview(flt):
        queries.choices(con)
        k = queries.kpis(con, flt)
        changes = queries.strategy_changes(con)
        figures.trends(queries.trends(con, flt, "week"), changes)
        d = queries.daily(con, flt)
        figures.timeline(d, changes)
        figures.timeline(d, changes, value="margin")
        mix = queries.action_mix(con, flt, "issue")
        figures.bars(mix, "contacts", "key")
        return k

    def replay_page(did, other=None):
        queries.find_decisions(con, f=f, limit=200)
        e = ex.explain(did)
        replay(log, [did])
        feats = e.inputs["features"]
        for aid in e.chosen:
            ca = e.attributions[aid]
            figures.attribution_waterfall(list(ca.features), ca.phi, ca.base_value, ca.raw_output,
                                          [feature_phrase(strategy, x, feats.get(x)) for x in ca.features])
        figures.decision_grid(e.candidates)
        figures.priority_factors(e.candidates)
        if e.chosen:
            others = [a for a in e.candidates["action_id"] if a != e.chosen[0]]
            c = ex.why_not(did, other or others[0])
            if c.terms:
                figures.contrast_bars([(t.name, t.log_ratio) for t in c.terms], c.winner, c.other)

    def whynot_switch(did):
        e = ex.explain(did)
        ranked = e.candidates[e.candidates["stage"] == "ranked"]["action_id"]
        c = ex.why_not(did, ranked.iloc[0] if len(ranked) else e.candidates["action_id"].iloc[-1])
        if c.terms:
            figures.contrast_bars([(t.name, t.log_ratio) for t in c.terms], c.winner, c.other)

    def customer():
        cust = con.execute("SELECT customer FROM decisions ORDER BY seq DESC LIMIT 1").fetchall()[0][0]
        queries.customer_history(con, cust)

    def funnel():
        figures.stage_funnel(queries.funnel(con, f))
        rules = queries.rule_counts(con, f)
        figures.bars(rules, "candidates", "rule")
        queries.rule_examples(con, rules["rule"].iloc[0], f)
        queries.value_finder(con, f, 0.05)

    def explanations_page():
        act = store.explained_actions(con)["action_id"].iloc[0]
        imp = store.importance(con, act)
        figures.global_importance(imp)
        figures.dependence(store.dependence(con, act, imp["feature"].iloc[0]), "x")
        figures.global_importance(store.importance(con, act, by="channel"))

    def tradeoffs():
        df = queries.kpi_tradeoff(con, f, "issue", actions)
        figures.tradeoff_scatter(df, queries.kpis(con, f)["churn_not_reached"])

    from analysis import tradeoff as T

    fx = T.load_factors(log)
    spec = T.Setting(margin_weight=1.0, retention_weight=1.0)

    def models():
        reg = queries.models_registry(con)
        queries.model_usage(con)
        figures.calibration(json.loads(reg["metrics"].iloc[0])["calibration"])

    return {
        "overview": lambda: overview(f),
        "overview: filter channel=email": lambda: overview(f_email),
        "kpi_tradeoffs": tradeoffs,
        "decision_replay: newest decision": lambda: replay_page(newest),
        "decision_replay: pick another decision": lambda: replay_page(with_action),
        "decision_replay: switch why-not action": lambda: whynot_switch(with_action),
        "customer_history": customer,
        "funnel_policies": funnel,
        "explanations": explanations_page,
        "models": models,
        "integrity: chain link check only": lambda: integrity.links(con),
        "kpi_tradeoffs: load the logged factors (once per log version, cached)": lambda: T.load_factors(log),
        "kpi_tradeoffs: what-if (retention weight changed)": lambda: T.what_if(fx, spec),
        "kpi_tradeoffs: frontier, 21 settings (cached after the first view)": lambda: T.sweep(fx, 21),
        "kpi_tradeoffs: sensitivity (on demand, cached)": lambda: T.sensitivity(fx),
        "kpi_tradeoffs: off-policy estimate (on demand, cached)": lambda: T.off_policy(
            log, fx, T.first_actions(fx, spec), n_boot=200),
    }


#: The interactions whose queries read the summaries (decision_log.summaries): timed also with
#: the summaries turned off (``--compare-rows``), the in-run baseline.
SUMMARISED = ("overview", "overview: filter channel=email", "funnel_policies", "kpi_tradeoffs")


def timed(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"first_s": round(times[0], 3), "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="Use this existing log instead of building one.")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare-rows", action="store_true",
                    help="Also time the summarised pages on a copy without summaries (computed from the rows).")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    db = args.db
    build_s = None
    if db is None:
        db = str(Path(tmp.name) / "bench_app.duckdb")
        t = time.perf_counter()
        run_demo(db, args.decisions, explain_sample=2000)
        build_s = time.perf_counter() - t
    with DecisionLog.open(db, read_only=True) as log:
        con = log.con.cursor()
        n_dec = con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
        n_cand = con.execute("SELECT count(*) FROM candidates").fetchall()[0][0]
        base = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            for table in ("decisions", "candidates", "outcomes"):
                con.execute(f"SELECT count(*) FROM {table}").fetchall()
            base.append(time.perf_counter() - t)
        ex = Explainer(log)
        pages = {name: timed(fn, args.repeat) for name, fn in interactions(log, ex).items()}
    from_rows = {}
    if args.compare_rows:  # the same pages on the same file, computed from the rows
        from decision_log import summaries

        summaries.ENABLED = False
        try:
            with DecisionLog.open(db, read_only=True) as log:
                every = interactions(log, Explainer(log))
                from_rows = {name: timed(every[name], args.repeat) for name in SUMMARISED}
        finally:
            summaries.ENABLED = True
    tmp.cleanup()
    worst = max(v["max_s"] for v in pages.values())
    print(json.dumps({
        "benchmark": "bench_app",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "decisions": n_dec,
        "candidate_rows": n_cand,
        "build_log_s": None if build_s is None else round(build_s, 1),
        "baseline_bare_counts_s": round(statistics.median(base), 4),
        "interactions": pages,
        "summarised_pages_from_the_rows (baseline)": from_rows or None,
        "speedup_of_summaries": {k: round(v["median_s"] / max(pages[k]["median_s"], 1e-4), 1)
                                 for k, v in from_rows.items()} or None,
        "worst_interaction_s": worst,
        "targets": {"every_interaction<=1s": worst <= 1.0},
    }, indent=2))


if __name__ == "__main__":
    main()
