"""End-to-end jobs: the demo and the Hillstrom experiment (data → models → decisions →
outcomes → log, through :func:`~decision_log.writer.decide_and_log`) and single decisions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from decision_log import queries
from decision_log.replay import sample_ids
from decision_log.store import DecisionLog
from decision_log.writer import decide_and_log
from decisioning.engine import DecisionBatch, Engine
from decisioning.errors import InputError, KlartextError
from decisioning.inputs import Requests
from decisioning.models import ModelSet, train_models
from decisioning.scenarios import retail
from decisioning.strategy import Strategy
from explain.api import Explainer

Progress = Callable[[str, int, int], None]
#: What each progress bar of a job counts, by its label (the CLI shows it with the numbers).
UNITS = {"Compiling scoring and hashing (once per installation)": "steps", "Training propensity models": "models",
         "Deciding and logging": "decisions", "Explaining a sample of decisions": "candidates",
         "Training response models": "models", "Logging the held-out half": "decisions"}


@dataclass
class DemoResult:
    decisions: int
    candidates: int
    outcomes: int
    no_action: int
    seconds: dict[str, float]
    strategy_version: str
    explained: int = 0  #: scored candidates explained and checked for the dashboard


def _counter(progress: Progress | None, label: str, total: int) -> Callable[[int], None]:
    """A callback that adds ``k`` to a running count and reports it as ``label`` of ``total``
    (the bar appears at once, at zero, so its rate counts from the start)."""
    done = [0]
    if progress:
        progress(label, 0, total)

    def step(k: int = 1) -> None:
        done[0] += k
        if progress:
            progress(label, done[0], total)

    return step


def _compile(progress: Progress | None, seconds: dict[str, float]) -> None:
    """Compile (or load from numba's cache) the scoring and hashing code before the timed
    decide-and-log step: the first run after an installation takes ~20 s for it."""
    from decision_log.integrity import compile_assembly
    from decisioning.forest import compile_walk

    t = time.perf_counter()
    step = _counter(progress, "Compiling scoring and hashing (once per installation)", 2)
    compile_walk()
    step()
    compile_assembly()
    step()
    seconds["compile"] = time.perf_counter() - t


def _explain_sample(log: DecisionLog, batches: list[DecisionBatch], n: int, seed: int, seconds: dict[str, float],
                    progress: Progress | None) -> int:
    """Explain and check ``n`` random logged decisions (for the dashboard's global views);
    returns the number of candidates explained.  A failed check stops the job: a freshly
    logged decision must re-score exactly."""
    if not n:
        return 0
    t = time.perf_counter()
    sample = sample_ids(log, n, seed=seed)
    scored: dict[str, int] = {}  # scored candidates per decision: the bar's total
    for b in batches:
        scored.update(zip(b.decision_id.tolist(), np.isfinite(b.propensity).sum(axis=1).tolist()))
    total = sum(scored.get(d, 0) for d in sample)
    done = [0]

    def explained_rows(k: int) -> None:
        done[0] += k
        if progress:
            progress("Explaining a sample of decisions", done[0], max(total, done[0]))

    summary = Explainer(log, seed=seed).explain_many(sample, progress=explained_rows)
    if summary["failures"]:
        f = summary["failures"][0]
        raise KlartextError(f"Explanation check failed for {f['decision_id']} / {f['action_id']}: "
                            + "; ".join(f["problems"]), "Report this: a logged decision must re-score exactly.")
    if progress:
        progress("Explaining a sample of decisions", done[0], done[0])
    seconds["explain"] = time.perf_counter() - t
    return summary["candidates_explained"]


def _result(log: DecisionLog, batches: list[DecisionBatch], strategy: Strategy, explain_sample: int, seed: int,
            seconds: dict[str, float], progress: Progress | None) -> DemoResult:
    """Explain the job's sample of decisions, checkpoint the log and count what it holds."""
    explained = _explain_sample(log, batches, explain_sample, seed, seconds, progress)
    log.con.execute("CHECKPOINT")
    s = queries.summary(log.con.cursor())
    return DemoResult(s["decisions"], s["candidates"], s["outcomes"], s["no_action"], seconds, strategy.version,
                      explained)


#: The demo simulates at most this many customers at a time (a cohort): each cohort's customers
#: come back over their own ``days`` days, the cohorts one after the other, so memory stays
#: bounded however many customers the demo has (peak 3.3 GB at 10 million, most of it DuckDB's 1 GB
#: buffer pool, one cohort's work and the customers' wrapped keys, 72 bytes each).
COHORT = 250_000
STREAMED_DUCKDB_MEMORY = "1GB"  #: DuckDB's buffer pool while a demo of several cohorts is written


def run_demo(
    db: str,
    customers: int = 10_000,
    *,
    seed: int = 0,
    history_per_action: int = 8000,
    days: int = 28,
    explain_sample: int = 0,
    progress: Progress | None = None,
    seal_inputs: bool = True,
    plant: tuple[str, ...] = (),
    cohort: int = COHORT,
) -> DemoResult:
    """Generate the retail scenario, train models, decide for every customer, simulate outcomes,
    and explain (and check) ``explain_sample`` random decisions for the dashboard's global views.

    ``plant`` adds known faults from the period's middle day on, for the governance report to
    find (:data:`decisioning.scenarios.retail.PLANTS`): ``drift`` (the CRM's average order value
    arrives 1.5 times as high) and ``disparity`` (a new strategy version weights incentives up threefold
    for women).

    More than ``cohort`` customers are simulated in cohorts of that size, streamed: each
    cohort's customers come back over ``days`` days of their own, the cohorts one after the
    other up to today (the log stays in time order), each decided, logged, given its outcomes
    and summarised before the next is drawn."""
    unknown = set(plant) - set(retail.PLANTS)
    if unknown:
        raise InputError(f"Unknown fault to plant: {', '.join(sorted(unknown))}.",
                         f"Plant one or more of: {', '.join(retail.PLANTS)}.")
    k_cohorts = -(-customers // cohort)
    if plant and k_cohorts > 1:
        raise InputError(f"Faults are planted in a demo of one cohort (at most {cohort:,} customers), not "
                         f"{customers:,}.", f"Use --customers {cohort} or fewer with --plant.")
    seconds: dict[str, float] = {}
    strategy = retail.load_demo_strategy()
    t = time.perf_counter()
    history = retail.simulate_history(strategy, per_action=history_per_action, seed=seed)
    seconds["history"] = time.perf_counter() - t
    t = time.perf_counter()
    count = _counter(progress, "Training propensity models", len(strategy.actions))

    def trained(_action: str) -> None:
        count()

    models = train_models(strategy, history, seed=seed, progress=trained)
    del history
    seconds["train"] = time.perf_counter() - t
    engine = Engine(strategy, models)
    _compile(progress, seconds)
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    first_day_us = (now_us // 86_400_000_000 - days * k_cohorts) * 86_400_000_000  # midnight UTC
    log = DecisionLog.open(db, seal_inputs=seal_inputs)
    try:
        if k_cohorts > 1:  # DuckDB's cache of written blocks would otherwise grow towards 80% of memory
            log.con.execute(f"SET memory_limit = '{STREAMED_DUCKDB_MEMORY}'")
        on_logged = _counter(progress, "Deciding and logging", customers)
        batches: list[DecisionBatch] = []
        for k in range(k_cohorts):
            n = min(cohort, customers - k * cohort)
            # (the batches count a sample's candidates for the progress bar; a streamed demo keeps none)
            batches = _demo_cohort(log, engine, strategy, models, n, k * cohort + 1, k, seed, days,
                                   first_day_us + k * days * 86_400_000_000, plant, on_logged, seconds,
                                   keep=k_cohorts == 1)
            if k_cohorts > 1:  # each cohort's days summarised while they are at hand
                log.refresh_summaries()
        return _result(log, batches, strategy, explain_sample, seed, seconds, progress)
    finally:
        log.close()


def _demo_cohort(log: DecisionLog, engine: Engine, strategy: Strategy, models: ModelSet, customers: int, first: int,
                 k: int, seed: int, days: int, start_us: int, plant: tuple[str, ...], on_logged,
                 seconds: dict[str, float], keep: bool = True) -> list[DecisionBatch]:
    """Cohort ``k`` of :func:`run_demo`: ``customers`` new customers (numbered from ``first``)
    over ``days`` days from ``start_us``; returns its batches (with ``keep``)."""
    t = time.perf_counter()
    cseed = seed + 1 + 1000 * k  # (the first cohort is the demo of one cohort, unchanged)
    people = retail.generate_customers(customers, seed=cseed, first=first)
    who, when = retail.visits(people, customers, days, seed=cseed)
    frame, contacts, rej, days_since = retail.generate_interactions(people.iloc[who].reset_index(drop=True), strategy,
                                                                    seed=cseed)
    del people
    # the interaction's hour is the hour of its timestamp
    frame["hour"] = np.floor((when % 1) * 24).astype(np.int64)
    middle = int(np.searchsorted(when, days // 2))  # the first interaction of the period's middle day
    if "drift" in plant:
        frame = retail.plant_drift(frame, middle)
    req = Requests.from_frame(strategy, frame, contacts=contacts, rejections=rej, days_since_rejection=days_since)
    seconds["customers"] = seconds.get("customers", 0.0) + time.perf_counter() - t
    ts_us = start_us + (when * 86400e6).astype(np.int64)
    journeys = retail.Journeys(strategy, frame, who, when, ts_us, contacts, rej, days_since, seed=seed + 1000 * k)
    t = time.perf_counter()
    # one chunk per day: a returning customer's decision sees their earlier ones
    spans = journeys.spans()
    engines = [(engine, spans)]
    if "disparity" in plant:  # the second half is decided by a new version of the strategy
        engines = [(engine, [s for s in spans if s[0] < middle]),
                   (Engine(retail.plant_disparity(strategy), models), [s for s in spans if s[0] >= middle])]
    batches = []
    for eng, part in engines:
        batches += decide_and_log(log, eng, req, ts_us, on_logged=on_logged, spans=part,
                                  before=journeys.before, after=journeys.after, keep=keep)
    seconds["decide_and_log"] = seconds.get("decide_and_log", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    log.append_outcomes(journeys.outcomes())
    seconds["outcomes"] = seconds.get("outcomes", 0.0) + time.perf_counter() - t
    return batches


def decide_one(
    log: DecisionLog, item: dict[str, Any], strategy: Strategy | None = None, models: ModelSet | None = None
) -> tuple[DecisionBatch, Strategy]:
    """Validate one JSON request, fill its contact history from the log, decide and log it.

    Nothing is written when the request is invalid.  Where the log's strategy is managed
    (``klartext strategy``), the active version decides, or the canary's for its customers.
    """
    from decision_log import lifecycle

    routed = lifecycle.arrangement(log, strategy, ready=False, models=models)
    strategy = routed.champion.strategy
    if not isinstance(item, Mapping):
        kind = {list: "a list", str: "a text", int: "a number", float: "a number", bool: "true/false"}.get(
            type(item), "null" if item is None else type(item).__name__)
        raise InputError(f"The request must be one JSON object, got {kind}: {json.dumps(item)[:80]}",
                         'Send {"customer_id": ..., "channel": ..., "features": {...}}; `klartext run` decides a table '
                         "of customers.")
    item = dict(item)
    req = Requests.from_dicts(strategy, [item])  # validates before anything is loaded or written
    pseudo = log.pseudonymise([req.customer_id[0]])
    engine = routed.engines[int(routed.route(pseudo)[0])]  # the canary's version for its customers
    if engine is not routed.champion:
        req = Requests.from_dicts(engine.strategy, [item])
    strategy = engine.strategy
    if "contacts" not in item or "rejections" not in item:
        contacts, rejections = queries.contact_history(log.con.cursor(), pseudo[0], strategy,
                                                       decisions=log.history_source(strategy))
        item.setdefault("contacts", contacts)
        item.setdefault("rejections", rejections)
        req = Requests.from_dicts(strategy, [item])
    log.apply_objections(req, strategy)
    batch = engine.decide(req)
    log.register_strategy(strategy)
    log.register_models(engine.models)
    log.append(batch, strategy)
    return batch, strategy


def batch_to_json(batch: DecisionBatch, strategy: Strategy, row: int = 0) -> dict[str, Any]:
    """One decision of a batch as a JSON-ready dict (chosen actions first, then every candidate)."""
    cands = [{"action_id": action.id, "issue": action.issue, "group": action.group, **batch.cell(row, a)}
             for a, action in enumerate(strategy.actions)]
    cands.sort(key=lambda c: (not c["selected"], c["rank"] or 10**9, c["action_id"]))
    return {
        "decision_id": str(batch.decision_id[row]),
        "channel": strategy.channel_ids[int(batch.requests.channel[row])],
        "strategy_version": batch.strategy_version,
        "chosen_actions": [strategy.actions[a].id for a in batch.chosen[row]],
        "selection_probability": float(batch.selection_probability[row]),
        "latency_us": int(batch.latency_us[row]),
        "candidates": cands,
    }


def run_hillstrom(db: str, *, seed: int = 0, explain_sample: int = 0, progress: Progress | None = None) -> DemoResult:
    """The real Hillstrom experiment: train on one half, log the held-out half as decisions
    that serve the experiment's randomly assigned arm (probability 1/3) with real outcomes."""
    from decisioning.scenarios import hillstrom

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    strategy = hillstrom.load_strategy_file()
    frame = hillstrom.load_frame()
    train, test = hillstrom.split(frame, seed=seed)
    count = _counter(progress, "Training response models", len(strategy.actions))

    def trained(_action: str) -> None:
        count()

    models = train_models(strategy, hillstrom.history(train), seed=seed, progress=trained)
    seconds["train"] = time.perf_counter() - t
    assigned, prob = hillstrom.assignment(strategy, test)
    req = Requests.from_frame(strategy, test, assigned=assigned, assigned_probability=prob)
    ts_us = hillstrom.SEND_TIME_US + np.arange(len(test), dtype=np.int64) * 1000
    engine = Engine(strategy, models)
    _compile(progress, seconds)
    log = DecisionLog.open(db)
    try:
        t = time.perf_counter()
        on_logged = _counter(progress, "Logging the held-out half", len(test))

        batches = decide_and_log(log, engine, req, ts_us, on_logged=on_logged)
        seconds["decide_and_log"] = time.perf_counter() - t
        ids = np.concatenate([b.decision_id for b in batches])
        log.append_outcomes(hillstrom.outcomes(strategy, test, ids, ts_us))
        return _result(log, batches, strategy, explain_sample, seed, seconds, progress)
    finally:
        log.close()
