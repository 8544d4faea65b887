import pandas as pd
import streamlit as st

from decision_log import queries
from explain import figures
from pages.common import filters, log, table

st.title("KPI trade-offs")
st.caption("Margin against retention in the logged decisions: what each issue and channel earns, and how the "
           "churn of the customers it reached compares with those who got no action.")
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
f = filters(con)
by = st.radio("By", ["issue", "channel"], horizontal=True, key="to_by")
sv = con.execute("SELECT strategy_version FROM decisions WHERE strategy_version IS NOT NULL "
                 "ORDER BY seq DESC LIMIT 1").fetchall()
actions = None
if sv:
    s = lg.load_strategy(sv[0][0])
    actions = pd.DataFrame({"action_id": [a.id for a in s.actions],
                            "net_margin": [a.margin - a.incentive_cost for a in s.actions],
                            "retention_effect": [a.retention_effect for a in s.actions]})
    st.caption(f"Strategy `{s.version}`: margin weight {s.margin_weight:g}, retention weight {s.retention_weight:g}.")
df = queries.kpi_tradeoff(con, f, by, actions)
if df.empty:
    st.warning("No action was shown in this selection. Widen the filters.")
    st.stop()
k = queries.kpis(con, f)
st.plotly_chart(figures.tradeoff_scatter(df, k["churn_not_reached"], by), width="stretch", key="scatter")
c1, c2 = st.columns(2)
c1.plotly_chart(figures.bars(df.sort_values("expected_margin", ascending=False), "expected_margin", "key",
                             title="expected margin (Σ propensity × net margin)", color="#2e7d32"),
                width="stretch", key="exp_margin")
c2.plotly_chart(figures.bars(df.sort_values("expected_retention", ascending=False), "expected_retention", "key",
                             title="expected churn reduction (Σ propensity × retention effect)", fmt=",.1f",
                             color="#6a1b9a"), width="stretch", key="exp_ret")
table(df, f"tradeoff_by_{by}")
st.caption("Realised figures come from the logged outcomes; expected ones from the logged propensities and the "
           "strategy's margins and retention effects. Sweeping the margin/retention weights (the frontier) and "
           "what-if levers need re-arbitration and are not on this page yet.")
