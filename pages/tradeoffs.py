import json

import pandas as pd
import streamlit as st

from analysis import tradeoff as T
from decision_log import queries
from decisioning.errors import KlartextError
from explain import figures
from pages.common import (
    factors,
    filters,
    imported_factors,
    imported_sensitivity,
    imported_what_if,
    log,
    log_key,
    off_policy,
    only_imported,
    sensitivity,
    show_error,
    sweep,
    table,
    tr,
    what_if,
)

st.title(tr("tradeoffs.title"))
st.caption(tr("tradeoffs.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
f = filters(con)
tab_measured, tab_frontier, tab_whatif, tab_ope = st.tabs(
    ["Measured", "Frontier", "What-if", "Off-policy estimate"])

with tab_measured:
    by = st.radio("By", ["issue", "channel"], horizontal=True, key="to_by")
    sv = queries.newest_strategy_version(con)
    actions = None
    if sv:
        s = lg.load_strategy(sv)
        actions = pd.DataFrame({"action_id": [a.id for a in s.actions],
                                "net_margin": [a.margin - a.incentive_cost for a in s.actions],
                                "retention_effect": [a.retention_effect for a in s.actions]})
    df = queries.kpi_tradeoff(con, f, by, actions)
    if df.empty:
        st.warning("No action was shown in this selection. Widen the filters.")
    else:
        k = queries.kpis(con, f)
        st.plotly_chart(figures.tradeoff_scatter(df, k["churn_not_reached"], by), width="stretch", key="scatter")
        table(df, f"tradeoff_by_{by}")
        st.caption("Realised figures come from the logged outcomes; expected ones from the logged propensities and "
                   "the strategy's margins and retention effects.")

if only_imported(lg):  # no strategy to re-run: re-arbitrate the four factors the source logged
    try:
        lf = imported_factors(lg)
    except KlartextError as exc:
        with tab_whatif:
            show_error(exc)
        st.stop()
    with tab_frontier:
        st.info(f"These decisions were imported ({lf.source}): the source's value does not split into margin and "
                "retention, so there is no margin/retention frontier. The **What-if** tab re-arbitrates their "
                "logged factors.")
    with tab_ope:
        st.info("Off-policy estimates of imported decisions need the served action's logging probability and "
                "outcomes: import them (generic format: `probability`, `outcome`; or `klartext import-outcomes`), "
                "then run `klartext ope --target-probabilities FILE`.")
    with tab_whatif:
        has = int((lf.logged_first >= 0).sum())
        st.markdown(f"Re-arbitrating the **{len(lf):,}** imported decisions ({lf.source}) with their logged "
                    "priority = propensity × value × context weight × lever reproduces the first action of "
                    f"**{lf.reproduced:,}** of the {has:,} that chose one.")
        st.markdown("**Levers by issue** (replace the logged levers of that issue's actions)")
        issues = sorted(set(lf.issue) - {""})
        cols = st.columns(max(1, len(issues)))
        levers = {}
        for col, issue in zip(cols, issues):
            v = col.number_input(issue, 0.0, 100.0, None, 0.1, key=f"im_lever_{issue}", placeholder="as logged")
            if v is not None:
                levers[issue] = v
        res = imported_what_if(*log_key(lg), json.dumps(levers, sort_keys=True))
        st.metric("Decisions whose first action changes", f"{res['changed']:.2%}")
        table(res["by_action"], "imported_what_if")
        st.markdown("**Global sensitivity:** which factor decides most?")
        sens = imported_sensitivity(*log_key(lg))
        st.plotly_chart(figures.bars(sens, "changed", "change", fmt=".1%", color="#6a1b9a"), width="stretch",
                        key="im_sens")
        table(sens, "imported_sensitivity")
    st.stop()

try:
    fx = factors(lg)
except KlartextError as exc:
    with tab_frontier:
        show_error(exc)
    st.stop()
s = fx.strategy

with tab_frontier:
    st.markdown(f"Re-arbitrating the **{len(fx):,}** logged decisions of strategy `{s.version}` with margin weight "
                f"`2(1−λ)·{s.margin_weight:g}` and retention weight `2λ·{s.retention_weight:g}` — no model calls: "
                "every candidate row holds its factors. λ = 0.5 is the strategy as logged.")
    steps = st.select_slider("Weight settings", [11, 21, 41, 81], value=21, key="steps")
    sw = sweep(*log_key(lg), steps)
    st.plotly_chart(figures.frontier(sw), width="stretch", key="frontier")
    table(sw, "frontier")

with tab_whatif:
    c1, c2 = st.columns(2)
    mw = c1.number_input("Margin weight", 0.0, 100.0, float(s.margin_weight), 0.1, key="wi_mw")
    rw = c2.number_input("Retention weight", 0.0, 100.0, float(s.retention_weight), 0.1, key="wi_rw")
    st.markdown("**Levers by issue** (replace the strategy's)")
    cols = st.columns(len(fx.issues))
    levers = {}
    for col, issue in zip(cols, fx.issues):
        current = float(s.levers[[a.issue == issue for a in s.actions]].max())
        v = col.number_input(issue, 0.0, 100.0, current, 0.1, key=f"wi_lever_{issue}")
        if v != current:
            levers[issue] = v
    spec = json.dumps({"margin_weight": mw, "retention_weight": rw, "levers": levers}, sort_keys=True)
    res = what_if(*log_key(lg), spec)
    st.metric("Decisions whose first action changes", f"{res['changed']:.2%}")
    m = st.columns(len(T.KPI_TABLE))
    for col, k in zip(m, T.KPI_TABLE):
        b, w = res["base"][k.name], res["what_if"][k.name]
        col.metric(k.label, f"{w:,.0f}", f"{w - b:+,.0f}", help=k.meaning)
    table(res["by_issue"], "what_if_by_issue")
    table(res["by_channel"], "what_if_by_channel")
    st.markdown("**Global sensitivity:** which factor decides most?")
    if st.toggle("Compute sensitivity (re-arbitrates every decision once per factor and lever)", key="sens_on"):
        sens = sensitivity(*log_key(lg))
        st.plotly_chart(figures.bars(sens, "changed", "change", fmt=".1%", color="#6a1b9a"), width="stretch",
                        key="sens")
        table(sens, "sensitivity")

with tab_ope:
    st.markdown("What the **what-if setting** (previous tab) would have earned, estimated from the decisions that "
                "were served at random (exploration or an experiment's arms) with their logged probabilities.")
    reward = st.selectbox("Reward per decision", list(T.REWARDS), key="ope_reward")
    if not st.toggle("Estimate (bootstrap intervals over every decision)", key="ope_on"):
        st.stop()
    try:
        o = off_policy(*log_key(lg), spec, reward)
    except T.UnsupportedTarget as exc:
        st.error(f"{exc.message} {exc.hint}", icon=":material/block:")
        st.stop()
    except ValueError as exc:
        st.warning(f"{exc} Log decisions with exploration (strategy: exploration.epsilon > 0).")
        st.stop()
    if "warning" in o:
        st.error(o["warning"], icon=":material/warning:")
    est = pd.DataFrame(o["estimates"].values())
    st.plotly_chart(figures.intervals(est, "value", "ci_low", "ci_high", "estimator",
                                      reference=o["logging_policy_value"],
                                      title=f"Estimated {reward} per decision (dashed: the logged policy's observed value)"),
                    width="stretch", key="ope")
    st.caption(f"{o['decisions_with_outcomes']:,} decisions with outcomes, {o['explored_share']:.1%} explored; the "
               f"target differs on {o['target_differs']:.1%}; {o['supported']:.1%} of its choices had a positive "
               "logging probability" + (f" (estimates over those {o['decisions']:,} only)." if o["scope"] != "all"
                                        else "."))
    table(est, f"ope_{reward}")
