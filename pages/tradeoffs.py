import json

import pandas as pd
import streamlit as st

from analysis import tradeoff as T
from decision_log import queries
from decisioning.errors import KlartextError
from explain import figures
from explain.i18n import compact
from pages.common import (
    FACTORS_MAX_AGE_S,
    catalog,
    factor_key,
    factors_in,
    factors_read_at,
    filter_spec,
    filters,
    fmt,
    imported_factors,
    imported_sensitivity,
    imported_what_if,
    lang,
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
number, percent = fmt()
currency = catalog(lg)[1]
# the tabs run only when chosen: the re-deciding ones read the logged factors (a few seconds on
# a 10M log), which the measured figures do not need
tab_measured, tab_frontier, tab_whatif, tab_ope = st.tabs(
    [tr("tradeoffs.tab_measured"), tr("tradeoffs.tab_frontier"), tr("tradeoffs.tab_whatif"), tr("tradeoffs.tab_ope")],
    key="to_tab", on_change="rerun")
redeciding = bool(tab_frontier.open or tab_whatif.open or tab_ope.open)

if tab_measured.open:
    with tab_measured:
        by = st.radio(tr("overview.by"), ["issue", "channel"], horizontal=True, key="to_by", format_func=lambda b: tr(f"by.{b}"))
        sv = queries.newest_strategy_version(con)
        actions = None
        if sv:
            s = lg.load_strategy(sv)
            actions = pd.DataFrame({"action_id": [a.id for a in s.actions],
                                    "net_margin": [a.margin - a.incentive_cost for a in s.actions],
                                    "retention_effect": [a.retention_effect for a in s.actions]})
        df = queries.kpi_tradeoff(con, f, by, actions)
        if df.empty:
            st.warning(tr("tradeoffs.none_shown"))
        else:
            k = queries.kpis(con, f)
            st.plotly_chart(figures.tradeoff_scatter(df, k["churn_not_reached"], by, lang=lang(), currency=currency),
                            width="stretch", key="scatter")
            money_col = {"format": "%.2f"}
            table(df, f"tradeoff_by_{by}", column_config={
                "key": tr(f"by.{by}").capitalize(), "contacts": tr("tradeoffs.col_contacts"),
                "accepted": tr("customer.accepted_col"),
                "margin": st.column_config.NumberColumn(tr("customer.margin_col", currency=currency), **money_col),
                "margin_per_contact": st.column_config.NumberColumn(tr("tradeoffs.col_margin_per_contact",
                                                                       currency=currency), **money_col),
                "churn_reached": st.column_config.NumberColumn(tr("fig.churn_of_reached"), format="percent"),
                "expected_margin": st.column_config.NumberColumn(tr("tradeoffs.col_expected_margin", currency=currency),
                                                                 **money_col),
                "expected_retention": st.column_config.NumberColumn(tr("tradeoffs.col_expected_retention"),
                                                                    format="%.2f")})
            st.caption(tr("tradeoffs.measured_caption"))

if only_imported(lg):  # no strategy to re-run: re-arbitrate the four factors the source logged
    if not redeciding:
        st.stop()
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
    s = lg.load_strategy(lg.latest_strategy_version())
except KlartextError as exc:
    with tab_frontier:
        show_error(exc)
    st.stop()
with tab_whatif:  # its inputs keep their values while another tab is open (they are cheap to show)
    whatif_note = st.container()
    c1, c2 = st.columns(2)
    mw = c1.number_input(tr("tradeoffs.margin_weight"), 0.0, 100.0, float(s.margin_weight), 0.1, key="wi_mw")
    rw = c2.number_input(tr("tradeoffs.retention_weight"), 0.0, 100.0, float(s.retention_weight), 0.1, key="wi_rw")
    st.markdown(tr("tradeoffs.levers"))
    issues = sorted({a.issue for a in s.actions})
    cols = st.columns(len(issues))
    levers = {}
    for col, issue in zip(cols, issues):
        current = float(s.levers[[a.issue == issue for a in s.actions]].max())
        v = col.number_input(issue, 0.0, 100.0, current, 0.1, key=f"wi_lever_{issue}")
        if v != current:
            levers[issue] = v
    spec = json.dumps({"margin_weight": mw, "retention_weight": rw, "levers": levers}, sort_keys=True)
if not redeciding:
    st.stop()
fspec = filter_spec(con, f)
try:
    fx = factors_in(lg, fspec)
except KlartextError as exc:
    with tab_frontier:
        show_error(exc)
    st.stop()
n_all = queries.decision_count(con, s.version)


def selection_note() -> None:
    """What the re-arbitrating tabs take from the sidebar (the period and channels), and what not,
    and — on a large log — that they re-decide a random sample."""
    read_at = factors_read_at(lg)
    st.caption(tr("tradeoffs.selection", n=number(fx.decisions), total=number(n_all))
               + (" " + tr("tradeoffs.live_factors", time=f"{read_at:%H:%M:%S} UTC",
                                     minutes=int(FACTORS_MAX_AGE_S // 60))
                  if read_at is not None else "")
               + (" " + tr("tradeoffs.issues_not_applied") if f.issues else "")
               + (" " + tr("tradeoffs.sampled", n=number(len(fx)), total=number(fx.decisions))
                  if fx.population is not None else ""))


_UNITS = {k.name: k.unit for k in T.KPI_TABLE}


def kpi_column(name: str, suffix: str = "", delta: bool = False):
    """A KPI's column: its name (with the unit) in the page's language, its numbers formatted."""
    unit = _UNITS.get(name)
    label = ("Δ " if delta else "") + tr(f"kpi.{name}") + (f", {suffix}" if suffix else "") \
        + (f" ({currency})" if unit == "currency" else "")
    return st.column_config.NumberColumn(label, format="%.2f" if unit == "currency" else
                                         "%d" if name == "contacts" else "%.1f")


def kpi_columns(df: pd.DataFrame, by: str | None = None) -> dict:
    """Column labels and formats of the re-deciding tabs' tables (the frames of analysis.tradeoff)."""
    cfg: dict = {}
    variants = {"_base": {"suffix": tr("tradeoffs.col_strategy")}, "_what_if": {"suffix": tr("tradeoffs.col_whatif")},
                "_delta": {"delta": True}}  # a KPI's column of analysis.tradeoff's by-issue, by-channel tables
    for c in df.columns:
        if c == "key" and by:
            cfg[c] = tr(f"by.{by}").capitalize()
        elif c in _UNITS:
            cfg[c] = kpi_column(c)
        for end, how in variants.items():
            if c.endswith(end) and c[:-len(end)] in _UNITS:
                cfg[c] = kpi_column(c[:-len(end)], **how)
    named = {"lambda": st.column_config.NumberColumn(tr("tradeoffs.col_lambda"), format="%.2f"),
             "margin_weight": st.column_config.NumberColumn(tr("tradeoffs.margin_weight"), format="%.2f"),
             "retention_weight": st.column_config.NumberColumn(tr("tradeoffs.retention_weight"), format="%.2f"),
             "changed": st.column_config.NumberColumn(tr("tradeoffs.changed"), format="percent"),
             "current": st.column_config.CheckboxColumn(tr("tradeoffs.col_current")),
             "efficient": st.column_config.CheckboxColumn(tr("tradeoffs.col_efficient")),
             "change": tr("tradeoffs.col_change")}
    return cfg | {k: v for k, v in named.items() if k in df.columns}


def sensitivity_cases(sens: pd.DataFrame) -> pd.DataFrame:
    """The sensitivity table with its cases in words ("drop value", "lever growth ×1.1")."""
    import re

    def words(case: str) -> str:
        if m := re.fullmatch(r"drop (\w+)", case):
            return tr("tradeoffs.case_drop", factor=tr(f"factor.{m.group(1)}"))
        if m := re.fullmatch(r"lever (.+) ×(.+)", case):
            return tr("tradeoffs.case_lever", issue=m.group(1), step=m.group(2).replace(".", "," if lang() == "de"
                                                                                          else "."))
        return case
    return sens.assign(change=[words(c) for c in sens["change"]])


def estimate_columns() -> dict:
    return {"estimator": tr("tradeoffs.col_estimator"),
            "value": st.column_config.NumberColumn(tr("tradeoffs.col_estimate"), format="%.4f"),
            "ci_low": st.column_config.NumberColumn(tr("tradeoffs.col_ci_low"), format="%.4f"),
            "ci_high": st.column_config.NumberColumn(tr("tradeoffs.col_ci_high"), format="%.4f"),
            "n": st.column_config.NumberColumn(tr("tradeoffs.col_n"), format="%d"),
            "matched": st.column_config.NumberColumn(tr("tradeoffs.col_matched"), format="%d"),
            "ess": st.column_config.NumberColumn(tr("tradeoffs.col_ess"), format="%.0f")}


if len(fx) == 0:
    for tab in (tab_frontier, tab_whatif, tab_ope):
        with tab:
            st.warning(tr("tradeoffs.none_selected"))
    st.stop()

if tab_frontier.open:
    with tab_frontier:
        selection_note()
        st.markdown(tr("tradeoffs.frontier_intro", n=number(fx.decisions)))
        with st.expander(tr("replay.technical")):
            st.caption(tr("tradeoffs.frontier_detail", version=s.version, mw=f"{s.margin_weight:g}",
                          rw=f"{s.retention_weight:g}"))
        steps = st.select_slider(tr("tradeoffs.steps"), [11, 21, 41, 81], value=21, key="steps")
        sw = sweep(*factor_key(lg), steps, fspec, _lg=lg)
        st.plotly_chart(figures.frontier(sw), width="stretch", key="frontier")
        table(sw, "frontier", column_config=kpi_columns(sw))

if tab_whatif.open:
    with whatif_note:
        selection_note()
    with tab_whatif:
        res = what_if(*factor_key(lg), spec, fspec, _lg=lg)
        st.metric(tr("tradeoffs.changed"), percent(res["changed"], 2))
        m = st.columns(len(T.KPI_TABLE))
        for col, k in zip(m, T.KPI_TABLE):
            b, w = res["base"][k.name], res["what_if"][k.name]
            unit = f" {currency}" if k.unit == "currency" else ""
            # six figures side by side: millions in short (13,44 Mio.), the exact figure in the help
            col.metric(tr(f"kpi.{k.name}"), compact(w, lang()) + unit, number(w - b, sign=True) + unit,
                       help=tr(f"kpi_meaning.{k.name}") + f" ({number(w)}{unit})",
                       delta_color="inverse" if k.name == "incentive_spend" else "normal")
        table(res["by_issue"], "what_if_by_issue", column_config=kpi_columns(res["by_issue"], "issue"))
        table(res["by_channel"], "what_if_by_channel", column_config=kpi_columns(res["by_channel"], "channel"))
        st.markdown(tr("tradeoffs.sensitivity"))
        if st.toggle(tr("tradeoffs.sensitivity_on"), key="sens_on"):
            sens = sensitivity_cases(sensitivity(*factor_key(lg), fspec, _lg=lg))
            st.plotly_chart(figures.bars(sens, "changed", "change", fmt=".1%", color="#6a1b9a",
                                         x_title=tr("tradeoffs.changed_axis")), width="stretch", key="sens")
            table(sens, "sensitivity", column_config=kpi_columns(sens))

if tab_ope.open:
    with tab_ope:
        selection_note()
        st.markdown(tr("tradeoffs.ope_intro"))
        reward = st.selectbox(tr("tradeoffs.reward"), list(T.REWARDS), key="ope_reward",
                              format_func=lambda r: tr(f"reward.{r}"))
        if not st.toggle(tr("tradeoffs.ope_on"), key="ope_on"):
            st.stop()
        try:
            o = off_policy(*factor_key(lg), spec, reward, fspec, _lg=lg)
        except T.UnsupportedTarget as exc:
            st.error(tr("tradeoffs.ope_unsupported", n=number(exc.decisions)) + " "
                     + tr("tradeoffs.ope_no_exploration" if exc.no_exploration else "tradeoffs.ope_other_actions")
                     + " " + tr("tradeoffs.ope_unsupported_hint"), icon=":material/block:")
            st.stop()
        except ValueError as exc:
            st.warning(tr("tradeoffs.ope_impossible", why=str(exc)))
            st.stop()
        if "warning" in o:  # (the numbers of analysis.tradeoff's warning, in the page's language)
            st.error(tr("tradeoffs.ope_positivity", unsupported=percent(1 - o["supported"], 1),
                        supported=percent(o["supported"], 1), n=number(o["decisions"]))
                     + (" " + tr("tradeoffs.ope_too_little") if o["supported"] < T.SUPPORT_WARN else ""),
                     icon=":material/warning:")
        est = pd.DataFrame(o["estimates"].values())
        est["estimator"] = est["estimator"].str.upper()
        st.plotly_chart(figures.intervals(est, "value", "ci_low", "ci_high", "estimator",
                                          reference=o["logging_policy_value"],
                                          title=tr("tradeoffs.ope_title", reward=tr(f"reward.{reward}"))),
                        width="stretch", key="ope")
        st.caption(tr("tradeoffs.ope_caption", n=number(o["decisions_with_outcomes"]),
                      explored=percent(o["explored_share"], 1), differs=percent(o["target_differs"], 1),
                      supported=percent(o["supported"], 1))
                   + (" " + tr("tradeoffs.ope_only_supported", n=number(o["decisions"])) if o["scope"] != "all" else ""))
        table(est, f"ope_{reward}", column_config=estimate_columns())
