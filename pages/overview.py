import streamlit as st

from decision_log import queries
from explain.figures import stage_funnel
from pages.common import connection

st.title("Overview")
con = connection()
if con is not None:
    s = queries.summary(con)
    if not s["decisions"]:
        st.info("The log holds no decisions yet. Run `klartext demo` to fill it.")
        st.stop()
    cols = st.columns(4)
    cols[0].metric("Decisions", f"{s['decisions']:,}")
    cols[1].metric("Candidate rows", f"{s['candidates']:,}")
    cols[2].metric("Outcomes", f"{s['outcomes']:,}")
    cols[3].metric("No action", f"{s['no_action'] / s['decisions']:.1%}")
    st.caption(f"From {s['first']:%Y-%m-%d %H:%M} to {s['last']:%Y-%m-%d %H:%M} · "
               f"{s['strategies']} strategy version(s) · {s['models']} model version(s)")
    st.subheader("Where candidate actions stop")
    st.plotly_chart(stage_funnel(queries.stage_counts(con)), use_container_width=True)
