import json

import streamlit as st

from decision_log import queries
from explain import figures
from pages.common import action_label, catalog, fmt, log, table, tr

st.title(tr("models.title"))
st.caption(tr("models.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
names, _ = catalog(lg)
reg = queries.models_registry(con)
if reg.empty:
    st.info(tr("models.none"))
    st.stop()
num, _ = fmt()
use = queries.model_usage(con)
reg = reg.merge(use.rename(columns={"model_version": "version"}), on=["action_id", "version"], how="left")
m = st.columns(3)
m[0].metric(tr("models.versions"), num(len(reg)))
m[1].metric(tr("models.median_auc"), num(reg["auc"].median(), 3))
m[2].metric(tr("models.worst_ece"), num(reg["ece"].max(), 3))
reg.insert(0, "name", reg["action_id"].map(lambda a: action_label(names, a)))
st.plotly_chart(figures.bars(reg.sort_values("auc", ascending=False), "auc", "name", fmt=".3f",
                             title=tr("models.auc_chart"), x_title="AUC"), width="stretch", key="auc")
table(reg.drop(columns=["metrics", "features"]), "models")
labels = list(reg["name"] + " · " + reg["version"])
pick = st.selectbox(tr("models.pick"), labels, key="model_pick")
row = reg.iloc[labels.index(pick)]
metrics = json.loads(row["metrics"])
c1, c2 = st.columns([3, 2])
c1.plotly_chart(figures.calibration(metrics.get("calibration", []), title=tr("models.calibration",
                                                                            action=row["name"])),
                width="stretch", key="calib")
scored = 0 if row["scored"] != row["scored"] else int(row["scored"])
c2.markdown(tr("models.card", version=row["version"], algorithm=row["algorithm"],
               fingerprint=row["training_fingerprint"], n_train=num(row["n_train"]), n_test=num(row["n_test"]),
               auc=num(row["auc"], 3), brier=num(row["brier"], 4), ece=num(row["ece"], 4), scored=num(scored)))
c2.markdown(tr("models.features", features=", ".join(f"`{x}`" for x in row["features"])))
