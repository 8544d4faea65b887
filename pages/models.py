import json

import streamlit as st

from decision_log import queries
from explain import figures
from pages.common import connection, table, tr

st.title(tr("models.title"))
st.caption(tr("models.caption"))
con = connection()
if con is None:
    st.stop()
reg = queries.models_registry(con)
if reg.empty:
    st.info("No model registered in this log (imported decisions carry their own scores).")
    st.stop()
use = queries.model_usage(con)
reg = reg.merge(use.rename(columns={"model_version": "version"}), on=["action_id", "version"], how="left")
m = st.columns(3)
m[0].metric("Model versions", len(reg))
m[1].metric("Median AUC", f"{reg['auc'].median():.3f}")
m[2].metric("Worst calibration error (ECE)", f"{reg['ece'].max():.3f}")
st.plotly_chart(figures.bars(reg.sort_values("auc", ascending=False), "auc", "action_id", fmt=".3f",
                             title="AUC on held-out history"), width="stretch", key="auc")
table(reg.drop(columns=["metrics", "features"]), "models")
pick = st.selectbox("Model", list(reg["action_id"] + " · " + reg["version"]), key="model_pick")
row = reg.iloc[list(reg["action_id"] + " · " + reg["version"]).index(pick)]
metrics = json.loads(row["metrics"])
c1, c2 = st.columns([3, 2])
c1.plotly_chart(figures.calibration(metrics.get("calibration", []), title=f"Calibration of {row['action_id']}"),
                width="stretch", key="calib")
c2.markdown(f"**Version** `{row['version']}` · {row['algorithm']}  \n**Training data fingerprint** "
            f"`{row['training_fingerprint']}`  \n**Trained on** {row['n_train']:,} rows, tested on {row['n_test']:,}  \n"
            f"**AUC** {row['auc']:.3f} · **Brier** {row['brier']:.4f} · **ECE** {row['ece']:.4f}  \n"
            f"**Scored** {0 if row['scored'] != row['scored'] else int(row['scored']):,} candidates")
c2.markdown("**Features:** " + ", ".join(f"`{x}`" for x in row["features"]))
