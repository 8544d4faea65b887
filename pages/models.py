import json

import streamlit as st

from decision_log import queries
from explain import figures
from pages.common import connection, fmt, table, tr

st.title(tr("models.title"))
st.caption(tr("models.caption"))
con = connection()
if con is None:
    st.stop()
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
st.plotly_chart(figures.bars(reg.sort_values("auc", ascending=False), "auc", "action_id", fmt=".3f",
                             title=tr("models.auc_chart")), width="stretch", key="auc")
table(reg.drop(columns=["metrics", "features"]), "models")
pick = st.selectbox(tr("models.pick"), list(reg["action_id"] + " · " + reg["version"]), key="model_pick")
row = reg.iloc[list(reg["action_id"] + " · " + reg["version"]).index(pick)]
metrics = json.loads(row["metrics"])
c1, c2 = st.columns([3, 2])
c1.plotly_chart(figures.calibration(metrics.get("calibration", []), title=tr("models.calibration",
                                                                            action=row["action_id"])),
                width="stretch", key="calib")
scored = 0 if row["scored"] != row["scored"] else int(row["scored"])
c2.markdown(tr("models.card", version=row["version"], algorithm=row["algorithm"],
               fingerprint=row["training_fingerprint"], n_train=num(row["n_train"]), n_test=num(row["n_test"]),
               auc=num(row["auc"], 3), brier=num(row["brier"], 4), ece=num(row["ece"], 4), scored=num(scored)))
c2.markdown(tr("models.features", features=", ".join(f"`{x}`" for x in row["features"])))
