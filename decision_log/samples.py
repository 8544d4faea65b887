"""Seeded exports shaped like real ones, for tests, benchmarks and trying the importers.

:func:`pega_v2_export` writes a Pega full-funnel ("decision analyzer", v2) export with the
shape measured on a public 1.3M-row sample (see ``docs/import.md``): 29 actions; **1–8 rows
per (interaction, action)**, most often 6–7 (about 190 rows per interaction), because an
action passes several strategy components and may stop at a different one; seven stages in
five stage groups, ordered by ``Stage_pyOrder`` — EngagementPolicies (1400–1600, three
stages), JourneysContactPolicies (1800), Arbitration (3900), Bundling (4000), Output
(10000); about 93% of the rows stop in EngagementPolicies and well under 1% reach Output;
every interaction has rows in EngagementPolicies and roughly 90% / 40% / 10% / 5% still have
an action at the following groups.  Values are random; only the shape is real.

From Python: ``pega_v2_export("export.parquet", 7_000)`` (≈ 1.3M rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

#: (stage group, stage name, Stage_pyOrder) in Pega's order.
PEGA_V2_STAGES = (
    ("EngagementPolicies", "Eligibility", 1400),
    ("EngagementPolicies", "Applicability", 1500),
    ("EngagementPolicies", "Suitability", 1600),
    ("JourneysContactPolicies", "ContactPolicies", 1800),
    ("Arbitration", "Arbitration", 3900),
    ("Bundling", "Bundling", 4000),
    ("Output", "Output", 10000),
)
_GROUPS = ("EngagementPolicies", "JourneysContactPolicies", "Arbitration", "Bundling", "Output")
#: Share of interactions that still have an action at each group (after EngagementPolicies).
_REACH = (1.0, 0.90, 0.40, 0.10, 0.05)
#: Rows per (interaction, action): 1..8.
_ROWS_P = np.array([0.01, 0.01, 0.02, 0.04, 0.08, 0.30, 0.34, 0.20])
_ISSUES = (("Sales", ("Cards", "Loans", "Mortgages", "Savings")), ("Retention", ("Proactive", "Reactive")),
           ("Service", ("Onboarding", "Support")))
#: Strategy components per stage group (111 in all).
_COMPONENTS = {"EngagementPolicies": 90, "JourneysContactPolicies": 8, "Arbitration": 6, "Bundling": 4, "Output": 3}


def _actions(n: int = 29) -> tuple[list[str], list[str], list[str]]:
    pairs = [(i, g) for i, gs in _ISSUES for g in gs]
    names, issues, groups = [], [], []
    for k in range(n):
        issue, group = pairs[k % len(pairs)]
        names.append(f"{group}Offer{k + 1:02d}")
        issues.append(issue)
        groups.append(group)
    return names, issues, groups


def _block(rng: np.random.Generator, first: int, n: int, actions: tuple) -> pa.Table:
    names, issues, groups = (np.array(x) for x in actions)
    A = len(names)
    # how far each interaction gets (index into _GROUPS)
    u = rng.random(n)
    depth = np.zeros(n, np.int64)
    for g in range(1, len(_GROUPS)):
        depth[u < _REACH[g]] = g
    k = rng.choice(np.arange(1, 9), size=(n, A), p=_ROWS_P)
    per_inter = k.sum(axis=1)
    inter = np.repeat(np.arange(n), per_inter)
    action = np.repeat(np.tile(np.arange(A), n), k.ravel())
    rows = len(inter)
    d = depth[inter]
    # a row stops in EngagementPolicies unless its interaction got further and it is one of the few
    # that did; Output rows are the presented actions (one to three per interaction that got there)
    further = (rng.random(rows) < 0.075) & (d >= 1)
    group = np.where(further, 1 + (rng.random(rows) * np.minimum(d, 3)).astype(np.int64), 0)
    group = np.minimum(group, np.minimum(d, 3))
    starts = np.concatenate([[0], np.cumsum(per_inter)[:-1]])
    outputs = np.flatnonzero(depth == 4)
    for i in outputs.tolist():
        pick = rng.choice(per_inter[i], size=min(per_inter[i], int(rng.integers(1, 4))), replace=False)
        group[starts[i] + pick] = 4
    stage = np.where(group == 0, rng.integers(0, 3, rows), group + 2)
    st_group = np.array([s[0] for s in PEGA_V2_STAGES])[stage]
    st_name = np.array([s[1] for s in PEGA_V2_STAGES])[stage]
    st_order = np.array([s[2] for s in PEGA_V2_STAGES], np.int32)[stage]
    comp_no = np.array([_COMPONENTS[g] for g in _GROUPS])[group]
    component = np.char.add(np.char.add(np.array(_GROUPS)[group], "_Filter"),
                            (rng.integers(0, 1 << 30, rows) % comp_no + 1).astype(str))
    strategy = np.char.add("Strategy", (rng.integers(0, 53, rows) + 1).astype(str))
    scored = group >= 1
    prop = np.where(scored, rng.beta(1.2, 30, rows), np.nan)
    value = np.round(rng.uniform(1, 80, rows), 2)
    cw, w = np.round(rng.uniform(0.5, 1.5, rows), 3), np.round(rng.uniform(0.5, 1.5, rows), 3)
    ts = (1_711_533_600_000_000 + (first + inter) * 7_000_000).astype("datetime64[us]")
    out = group == 4
    ids = first + inter

    def opt(x: np.ndarray) -> pa.Array:
        return pa.array(x, mask=~scored)

    return pa.table({
        "pxInteractionID": pa.array(np.char.add("INT-", ids.astype(str))).cast(pa.string()),
        "pxDecisionTime": pa.array(ts),
        "Primary_pySubjectID": pa.array(np.char.add("CUST-", (ids * 7919 % 1_000_003).astype(str))),
        "Primary_pySubjectType": pa.array(np.full(rows, "Customer")),
        "pyIssue": pa.array(issues[action]), "pyGroup": pa.array(groups[action]), "pyName": pa.array(names[action]),
        "pyTreatment": pa.array(np.char.add(names[action], np.char.add("_T", (rng.integers(0, 3, rows) + 1).astype(str)))),
        "Primary_ContainerPayload_Channel": pa.array(np.array(["Web", "Mobile", "Email", "CallCenter"])[ids % 4]),
        "Primary_ContainerPayload_Direction": pa.array(np.where(ids % 4 == 2, "Outbound", "Inbound")),
        "Stage_pyStageGroup": pa.array(st_group), "Stage_pyName": pa.array(st_name), "Stage_pyOrder": pa.array(st_order),
        "pxRecordType": pa.array(np.where(out, "OUTPUT", "FILTERED_OUT")),
        "pxComponentName": pa.array(component), "pxComponentType": pa.array(np.where(group == 0, "Filter", "Proposition")),
        "pxStrategyName": pa.array(strategy),
        "pyApplication": pa.array(np.full(rows, "CDH")), "pyApplicationVersion": pa.array(np.full(rows, "01.01.01")),
        "FinalPropensity": opt(prop), "pyModelPropensity": opt(prop), "pyPropensity": opt(prop),
        "AdjustedPropensity": opt(prop),
        "Value": pa.array(value), "ContextWeight": pa.array(cw), "Weight": pa.array(w),
        "Priority": opt(prop * value * cw * w),
        "ModelControlGroup": pa.array(np.where(rng.random(rows) < 0.02, "Control", "Test")),
        "ExperimentType": pa.array(np.full(rows, None), pa.string()),
    })


def pega_v2_export(path: str | Path, interactions: int, seed: int = 0, actions: int = 29,
                   block: int = 2_000) -> int:
    """Write a v2 export of ``interactions`` interactions to ``path`` (``.parquet`` or
    ``.csv``), in blocks (bounded memory); returns the number of rows."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    acts = _actions(actions)
    writer = None
    rows = 0
    try:
        for first in range(0, interactions, block):
            tbl = _block(rng, first, min(block, interactions - first), acts)
            rows += tbl.num_rows
            if writer is None:
                writer = (pq.ParquetWriter(path, tbl.schema) if path.suffix == ".parquet"
                          else pacsv.CSVWriter(path, tbl.schema))
            writer.write_table(tbl)
    finally:
        if writer is not None:
            writer.close()
    return rows
