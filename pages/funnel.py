import streamlit as st

from decision_log import queries
from explain import figures
from explain.i18n import stage_label
from pages.common import action_label, catalog, filters, lang, log, table, tr

st.title(tr("funnel.title"))
st.caption(tr("funnel.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
names, _ = catalog(lg)
lg_lang = lang()
f = filters(con)
st.subheader(tr("funnel.how_far"))
by = st.radio(tr("funnel.bar_per"), ["stage", "group"], horizontal=True, key="funnel_by",
              format_func=lambda b: tr(f"funnel.by_{b}"))
fun = queries.funnel(con, f, by=by)
fun["label"] = [stage_label(s, lab, lg_lang, by) for s, lab in zip(fun["stage"], fun["label"])]
if fun.empty:
    st.info(tr("funnel.none"))
else:
    st.plotly_chart(figures.stage_funnel(fun, lang=lg_lang), width="stretch", key="funnel")
    st.caption(tr("funnel.reach_caption"))
    table(fun, "funnel", column_config={
        "stage": tr("col.stage"), "label": tr("funnel.label"), "stage_group": tr("funnel.stage_group"),
        "stage_order": tr("funnel.order"), "rows": tr("funnel.rows"), "interactions_stopping": tr("funnel.stopping"),
        "interactions_reaching": tr("funnel.reaching"),
        "reaching_share": st.column_config.NumberColumn(tr("funnel.reaching_share"), format="percent")})

st.subheader(tr("funnel.rules"))
rules = queries.rule_counts(con, f)
if rules.empty:
    st.info(tr("funnel.no_rules"))
else:
    rules["label"] = rules["stage"] + " / " + rules["rule"]
    st.plotly_chart(figures.bars(rules, "candidates", "label", color="#c62828", x_title=tr("funnel.removed")),
                    width="stretch", key="rules")
    table(rules.drop(columns="label"), "rules", column_config={
        "stage": tr("col.stage"), "rule": tr("col.rule"), "candidates": tr("funnel.removed"),
        "share": st.column_config.NumberColumn(tr("funnel.share_removed"), format="percent")})
    rule = st.selectbox(tr("funnel.examples"), list(rules["rule"]), key="rule_pick")
    ex = queries.rule_examples(con, rule, f)
    ex.insert(3, "name", ex["action_id"].map(lambda a: action_label(names, a)))
    st.dataframe(ex, hide_index=True, width="stretch", column_config={
        "decision_id": tr("col.decision"), "ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm"),
        "channel": tr("col.channel"), "name": tr("col.action"), "action_id": tr("col.action_id"),
        "reason": tr("col.reason")})
    st.caption(tr("funnel.paste"))

st.subheader(tr("funnel.weak"))
low = st.slider(tr("funnel.weak_below"), 0.01, 0.5, 0.05, 0.01, key="low")
vf = queries.value_finder(con, f, low)
if not vf.empty:
    long = vf.melt(id_vars="channel", value_vars=["no_action_share", "only_low_share"], var_name="kind",
                   value_name="share")
    long["label"] = long["channel"] + " · " + long["kind"].map(lambda k: tr(f"funnel.{k}"))
    st.plotly_chart(figures.bars(long, "share", "label", fmt=".1%", color="#ef6c00", x_title=tr("funnel.share")),
                    width="stretch", key="vf")
    table(vf, "value_finder", column_config={
        "channel": tr("col.channel"), "decisions": tr("overview.decisions"), "no_action": tr("funnel.no_action"),
        "only_low": tr("funnel.only_low"),
        "no_action_share": st.column_config.NumberColumn(tr("funnel.no_action_share"), format="percent"),
        "only_low_share": st.column_config.NumberColumn(tr("funnel.only_low_share"), format="percent")})
