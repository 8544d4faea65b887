import streamlit as st

from decision_log import explanations as store
from decision_log import queries
from explain import figures
from pages.common import action_label, catalog, fmt, lang, log, require, table, tr

require("decisions")

st.title(tr("explanations.title"))
st.caption(tr("explanations.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
names, _ = catalog(lg)
number, _ = fmt()
lg_lang = lang()
done = store.explained_actions(con)
if done.empty:
    st.info(tr("explanations.none"))
    st.stop()
labels: dict[str, str] = {}
cats: dict[str, list[str]] = {}
sv = queries.newest_strategy_version(con)
if sv:  # feature labels and category values from the newest strategy
    s = lg.load_strategy(sv)
    labels = {f.name: f.label for f in s.features} | {"channel": tr("value.channel")}
    cats = {f.name: list(f.values) for f in s.features if f.type == "category"} | {"channel": list(s.channel_ids)}
explained = done.set_index("action_id")["n"]
c1, c2 = st.columns([2, 1])
action = c1.selectbox(tr("explanations.action"), list(done["action_id"]), key="ex_action",
                      format_func=lambda a: tr("explanations.action_option", name=action_label(names, a),
                                               n=number(int(explained[a]))))
segments = ["none", "channel", "issue", "week", "day", "month"]
seg = c2.selectbox(tr("explanations.split"), segments, key="ex_seg", format_func=lambda x: tr(f"explanations.seg_{x}"))
imp = store.importance(con, action, None if seg == "none" else seg)
imp["label"] = imp["feature"].map(lambda x: labels.get(x, x))
st.plotly_chart(figures.global_importance(imp, title=tr("explanations.drives", name=action_label(names, action)),
                                          lang=lg_lang), width="stretch", key="imp")
feature = st.selectbox(tr("explanations.dependence"),
                       list(imp.groupby("feature")["mean_abs"].mean().sort_values(ascending=False).index),
                       key="ex_feature", format_func=lambda x: labels.get(x, x))
dep = store.dependence(con, action, feature, keys=lg.subject_keys)
st.plotly_chart(figures.dependence(dep, labels.get(feature, feature), categories=cats.get(feature), lang=lg_lang),
                width="stretch", key="dep")
table(imp.drop(columns="label"), f"importance_{action}_{seg}")
st.caption(tr("explanations.footer", n=len(queries.choices(con)["actions"])))
