import streamlit as st

from decision_log import explanations as store
from decision_log import queries
from explain import figures
from pages.common import log, require, table, tr

require("decisions")

st.title(tr("explanations.title"))
st.caption(tr("explanations.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
done = store.explained_actions(con)
if done.empty:
    st.info("No stored explanations in this log yet. Explain a sample of decisions (they are checked and stored "
            "in the log) with:\n\n```\nklartext explain --sample 2000 --db PATH\n```")
    st.stop()
labels: dict[str, str] = {}
cats: dict[str, list[str]] = {}
sv = queries.newest_strategy_version(con)
if sv:  # feature labels and category values from the newest strategy
    s = lg.load_strategy(sv)
    labels = {f.name: f.label for f in s.features} | {"channel": "Channel"}
    cats = {f.name: list(f.values) for f in s.features if f.type == "category"} | {"channel": list(s.channel_ids)}
c1, c2 = st.columns([2, 1])
action = c1.selectbox("Action model", list(done["action_id"]), key="ex_action",
                      format_func=lambda a: f"{a} ({int(done.set_index('action_id').loc[a, 'n']):,} explained)")
seg = c2.selectbox("Split by", ["none", "channel", "issue", "week", "day", "month"], key="ex_seg")
imp = store.importance(con, action, None if seg == "none" else seg)
imp["label"] = imp["feature"].map(lambda x: labels.get(x, x))
st.plotly_chart(figures.global_importance(imp, title=f"What drives {action}"), width="stretch", key="imp")
feature = st.selectbox("Dependence of", list(imp.groupby("feature")["mean_abs"].mean().sort_values(ascending=False).index),
                       key="ex_feature", format_func=lambda x: labels.get(x, x))
dep = store.dependence(con, action, feature)
st.plotly_chart(figures.dependence(dep, labels.get(feature, feature), categories=cats.get(feature)),
                width="stretch", key="dep")
table(imp.drop(columns="label"), f"importance_{action}_{seg}")
st.caption(f"{len(queries.choices(con)['actions'])} actions in the catalog; attributions are in log-odds of "
           "acceptance, computed with the pinned model of each decision.")
