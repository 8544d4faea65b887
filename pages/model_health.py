"""Model health: does each propensity model still work? AUC and calibration on the period's
outcomes beside training, accepted offers per day, score and input stability — with the
offers behind a model."""

import pandas as pd
import streamlit as st

from analysis.governance import model_detail
from decision_log import monitoring
from explain import report
from pages.common import current_user, governance_page, log_key, tr

lg, period, compare, rep, lg_lang, f = governance_page("report.page.models_title", "report.page.models_caption")
con = lg.con.cursor()
thr = rep["thresholds"]
st.markdown(report.t("models.text", lg_lang, lo=f.x(thr["auc"][0]), hi=f.x(thr["auc"][1]), warn=f.x(thr["psi"][0]),
                     alert=f.x(thr["psi"][1])))
for a in rep["attention"]:
    if a["kind"] in ("auc_low", "auc_high", "score_drift", "input_drift"):
        st.error(report.attention_text(a, lg_lang, f), icon=":material/warning:")


def status(m):
    if m["flags"]:
        return "⚠ " + report.t("status.attention", lg_lang)
    return report.t("status.too_few", lg_lang) if m["auc"] is None else "✓ " + report.t("status.ok", lg_lang)


st.dataframe(pd.DataFrame([{
    report.t("col.model", lg_lang): m["name"], report.t("col.status", lg_lang): status(m),
    report.t("col.auc_train", lg_lang): m["auc_train"], report.t("col.auc_period", lg_lang): m["auc"],
    report.t("col.ci_low", lg_lang): m["auc_low"], report.t("col.ci_high", lg_lang): m["auc_high"],
    report.t("col.predicted", lg_lang): m["mean_predicted"], report.t("col.observed", lg_lang): m["observed_rate"],
    report.t("col.positives_day", lg_lang): m["positives_per_day"],
    report.t("col.psi_prev", lg_lang): m["psi_score_previous"], report.t("col.psi_train", lg_lang): m["psi_score_train"]}
    for m in rep["models"]]), hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in (
            report.t("col.auc_train", lg_lang), report.t("col.auc_period", lg_lang), report.t("col.ci_low", lg_lang),
            report.t("col.ci_high", lg_lang),
            report.t("col.psi_prev", lg_lang), report.t("col.psi_train", lg_lang))} | {
        c: st.column_config.NumberColumn(format="percent") for c in (
            report.t("col.predicted", lg_lang), report.t("col.observed", lg_lang))})
figs = report.figures(rep, lg_lang)
c1, c2 = st.columns(2)
if "models" in figs:
    c1.plotly_chart(figs["models"], width="stretch", key="mh_models")
if "inputs" in figs:
    c2.plotly_chart(figs["inputs"], width="stretch", key="mh_inputs")

st.subheader(tr("report.page.model"))
names = {m["action_id"]: m["name"] for m in rep["models"]}
aid = st.selectbox(tr("report.page.model"), list(names), format_func=lambda a: f"{names[a]} ({a})", key="mh_model")
m = next(x for x in rep["models"] if x["action_id"] == aid)
st.markdown(tr("report.page.model_numbers", auc=f.x(m["auc_train"]), period=f.x(m["auc"]),
               n=f.n(m["shown_with_outcome"]), pos=f.n(m["positives"])))


@st.cache_data(show_spinner=False, max_entries=16)
def _detail(path, version, start, end, compare, action_id, model_version):
    from analysis.governance import Period

    p = Period(start, end)
    return model_detail(lg, p, p.previous() if compare == "previous" else None, action_id, model_version)


detail = _detail(*log_key(lg), period.start, period.end, compare, aid, m["version"])
mf = report.model_figures(detail, lg_lang)
c1, c2 = st.columns(2)
if "calibration" in mf:
    c1.plotly_chart(mf["calibration"], width="stretch", key="mh_cal")
c2.plotly_chart(mf["scores"], width="stretch", key="mh_scores")
if "per_day" in mf:
    st.plotly_chart(mf["per_day"], width="stretch", key="mh_day")
if m["inputs_vs_training"]:
    with st.expander(tr("report.page.inputs_vs_training")):
        st.dataframe(pd.DataFrame(m["inputs_vs_training"][:10]), hide_index=True, width="stretch")
user = current_user()
if user is None or user.may("decisions"):
    st.subheader(tr("report.page.behind"))
    offers = monitoring.model_offers(con, *period.bounds, aid)
    offers = offers.assign(replay="replay?decision=" + offers["decision_id"])
    st.dataframe(offers[["ts", "decision_id", "replay", "channel", "propensity", "outcome"]], hide_index=True,
                 width="stretch", column_config={
                     "ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm"),
                     "decision_id": tr("col.decision"), "propensity": st.column_config.NumberColumn(format="%.3f"),
                     "replay": st.column_config.LinkColumn(tr("customer.replay"), display_text=tr("customer.open"))})
