"""Fairness: who gets which offers, incentives and payment terms, per group of the attributes
the strategy names (governance.fairness), with four-fifths flags, bootstrap intervals and the
decisions behind a rate."""

import pandas as pd
import streamlit as st

from analysis.governance import group_decisions
from explain import report
from pages.common import current_user, governance_page, log_key, tr

lg, period, compare, rep, lg_lang, f = governance_page("report.page.fairness_title", "report.page.fairness_caption")
thr = rep["thresholds"]
st.markdown(report.t("fairness.text", lg_lang, ratio=f.x(thr["min_ratio"]), min_group=f.n(thr["min_group"]),
                     n=f.n(rep["sample"]["decisions"])))
if not rep["fairness"]:
    st.info(report.t("fairness.none", lg_lang))
    st.stop()
labels = {fa["attribute"]: fa["label"] for fa in rep["fairness"]}
flags = {fa["attribute"]: sum(m["flagged"] for m in fa["metrics"]) for fa in rep["fairness"]}
attr = st.radio(tr("report.page.attribute"), list(labels), horizontal=True, key="fair_attr",
                format_func=lambda a: labels[a] + (f" ⚠ {flags[a]}" if flags[a] else ""))
fa = next(x for x in rep["fairness"] if x["attribute"] == attr)
if not fa["flag"]:
    st.info(report.t("fairness.not_flagged", lg_lang, note=fa["note"]))
for m in fa["metrics"]:
    if m["flagged"]:
        st.error(report.attention_text({"kind": "fairness", "label": fa["label"], **m}, lg_lang, f),
                 icon=":material/warning:")
groups = pd.DataFrame([{
    report.t("col.group", lg_lang): g["group"] + ("" if g["judged"] else " *"),
    report.t("col.decisions", lg_lang): g["decisions"],
    **{report.t(f"metric.{k}", lg_lang): (f.money(g.get(k), 2) if k == "incentive_value" else f.pct(g.get(k)))
       for k in report.METRICS}} for g in fa["groups"]])
st.dataframe(groups, hide_index=True, width="stretch")
if any(not g["judged"] for g in fa["groups"]):
    st.caption("\\* " + report.t("fairness.small", lg_lang, n=f.n(thr["min_group"])))
st.dataframe(pd.DataFrame([{
    report.t("col.metric", lg_lang): report.t(f"metric.{m['metric']}", lg_lang),
    report.t("col.low_high", lg_lang): f"{m['lowest']} / {m['highest']}",
    report.t("col.ratio", lg_lang): f"{f.x(m['ratio'])} ({f.x(m['ratio_low'])}–{f.x(m['ratio_high'])})",
    report.t("col.diff", lg_lang): f"{f.delta(m['difference'], m['metric'] == 'incentive_value')} "
                                   f"({f.delta(m['difference_low'], m['metric'] == 'incentive_value')} … "
                                   f"{f.delta(m['difference_high'], m['metric'] == 'incentive_value')})",
    report.t("col.finding", lg_lang): report.t("fairness.flag" if m["flagged"] else "fairness.below"
                                               if m["below_min_ratio"] else "fairness.fine", lg_lang)}
    for m in fa["metrics"]]), hide_index=True, width="stretch")
figs = report.figures(rep, lg_lang)
if f"fairness.{attr}" in figs:
    st.plotly_chart(figs[f"fairness.{attr}"], width="stretch", key="fair_fig")

st.subheader(tr("report.page.drill"))
user = current_user()
if user is not None and not user.may("decisions"):
    st.info(tr("report.page.drill_viewer"))
    st.stop()
c1, c2 = st.columns(2)
group = c1.selectbox(tr("report.page.drill_group"), [g["group"] for g in fa["groups"]], key="fair_group")
metric = c2.selectbox(tr("report.page.drill_metric"), [m for m in report.METRICS if m != "incentive_value"],
                      format_func=lambda m: report.t(f"metric.{m}", lg_lang), key="fair_metric")


@st.cache_data(show_spinner=False, max_entries=16)
def _behind(path, version, start, end, attribute, group, metric):
    from analysis.governance import Period

    return group_decisions(lg, Period(start, end), attribute, group, metric)


rows = _behind(*log_key(lg), period.start, period.end, attr, group, metric)
st.markdown(tr("report.page.drill_count", n=f.n(len(rows)), group=group,
               metric=report.t(f"metric.{metric}", lg_lang)))
rows = rows.assign(replay="replay?decision=" + rows["decision_id"])
st.dataframe(rows[["ts", "decision_id", "replay", "channel", "chosen_actions"]], hide_index=True, width="stretch",
             column_config={"ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm"),
                            "decision_id": tr("col.decision"),
                            "replay": st.column_config.LinkColumn(tr("customer.replay"),
                                                                  display_text=tr("customer.open"))})
