import streamlit as st

from decision_log import queries
from explain import figures
from pages.common import connection, filters, table, tr

st.title(tr("overview.title"))
st.caption(tr("overview.caption"))
con = connection()
if con is None:
    st.stop()
f = filters(con)
k = queries.kpis(con, f)
if not k["decisions"]:
    st.warning("No decisions in this period and channel selection. Widen the filters.")
    st.stop()
m = st.columns(6)
m[0].metric("Decisions", f"{k['decisions']:,}")
m[1].metric("With an action", f"{k['with_action'] / k['decisions']:.1%}")
if k["with_outcome"]:
    m[2].metric("Acceptance rate", f"{k['acceptance_rate']:.1%}",
                help=f"Accepted outcomes per action shown, over the {k['with_outcome']:,} with a logged outcome.")
    m[3].metric("Margin of accepted actions", f"{k['margin']:,.0f}",
                help="Realised margin, net of incentives and contact cost.")
else:
    m[2].metric("Acceptance rate", "no outcomes",
                help="No outcome is logged for the actions shown, so there is no acceptance rate (not 0%). "
                     "Add outcomes: `klartext import-outcomes`, or POST /outcome to a running service.")
    m[3].metric("Margin of accepted actions", "no outcomes")
if k["churn_reached"] is not None and k["churn_not_reached"] is not None:
    m[4].metric("Churn, reached", f"{k['churn_reached']:.1%}",
                f"{(k['churn_reached'] - k['churn_not_reached']) * 100:+.1f} pp vs. not reached", delta_color="inverse")
    m[5].metric("Churn, not reached", f"{k['churn_not_reached']:.1%}", help=f"{k['n_not_reached']:,} decisions without an action")

changes = queries.strategy_changes(con)
st.subheader("Actions shown per day")
st.plotly_chart(figures.timeline(queries.daily(con, f), changes), width="stretch", key="timeline")
st.subheader("Margin of accepted actions per day")
st.plotly_chart(figures.timeline(queries.daily(con, f), changes, value="margin"), width="stretch", key="timeline_m")

st.subheader("Action mix")
by = st.radio("By", ["issue", "group", "channel", "action_id"], horizontal=True, key="mix_by")
mix = queries.action_mix(con, f, by)
c1, c2 = st.columns(2)
c1.plotly_chart(figures.bars(mix, "contacts", "key", title="actions shown"), width="stretch", key="mix_contacts")
c2.plotly_chart(figures.bars(mix.sort_values("margin", ascending=False), "margin", "key", title="margin of accepted",
                             color="#2e7d32"), width="stretch", key="mix_margin")
table(mix, f"action_mix_by_{by}")
if len(changes) > 1:
    st.subheader("Strategy versions")
    table(changes, "strategy_versions")
