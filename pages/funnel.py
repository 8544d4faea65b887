import streamlit as st

from decision_log import queries
from explain import figures
from pages.common import connection, filters, table, tr

st.title(tr("funnel.title"))
st.caption(tr("funnel.caption"))
con = connection()
if con is None:
    st.stop()
f = filters(con)
st.subheader("How far interactions get, and where candidate actions stop")
by = st.radio("One bar per", ["stage", "group"], horizontal=True, key="funnel_by",
              format_func=lambda b: {"stage": "stage", "group": "stage group"}[b])
fun = queries.funnel(con, f, by=by)
if fun.empty:
    st.info("No decision in this selection.")
else:
    st.plotly_chart(figures.stage_funnel(fun), width="stretch", key="funnel")
    st.caption("An interaction *reaches* a stage when at least one of its candidate rows stopped there or later. "
               "Stages are in the flow's order (an imported log keeps its source's order, e.g. Pega's "
               "Stage_pyOrder).")
    table(fun, "funnel")

st.subheader("Rules that remove the most actions")
rules = queries.rule_counts(con, f)
if rules.empty:
    st.info("No action was removed by a rule in this selection.")
else:
    rules["label"] = rules["stage"] + " / " + rules["rule"]
    st.plotly_chart(figures.bars(rules, "candidates", "label", color="#c62828"), width="stretch", key="rules")
    table(rules.drop(columns="label"), "rules")
    rule = st.selectbox("Example decisions for rule", list(rules["rule"]), key="rule_pick")
    ex = queries.rule_examples(con, rule, f)
    st.dataframe(ex, hide_index=True, width="stretch")
    st.caption("Paste a decision id into **Decision replay** to see the whole decision.")

st.subheader("Customers with no action, or only weak ones")
low = st.slider("A weak action has a propensity below", 0.01, 0.5, 0.05, 0.01, key="low")
vf = queries.value_finder(con, f, low)
if not vf.empty:
    long = vf.melt(id_vars="channel", value_vars=["no_action_share", "only_low_share"], var_name="kind",
                   value_name="share")
    long["label"] = long["channel"] + " · " + long["kind"].str.replace("_share", "").str.replace("_", " ")
    st.plotly_chart(figures.bars(long, "share", "label", fmt=".1%", color="#ef6c00"), width="stretch", key="vf")
    table(vf, "value_finder")
