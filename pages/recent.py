import streamlit as st

from decision_log import queries
from pages.common import connection

st.title("Recent decisions")
con = connection()
if con is not None:
    channels = ["all"] + [r[0] for r in con.execute("SELECT DISTINCT channel FROM decisions ORDER BY 1").fetchall()]
    c1, c2 = st.columns([1, 1])
    channel = c1.selectbox("Channel", channels)
    limit = c2.number_input("Show", min_value=10, max_value=5000, value=100, step=10)
    df = queries.recent_decisions(con, int(limit), None if channel == "all" else channel)
    if df.empty:
        st.info("No decisions match. Run `klartext demo` to create some.")
        st.stop()
    df["chosen_action"] = df["chosen_action"].fillna("— no action —")
    st.dataframe(df, hide_index=True, use_container_width=True, on_select="rerun",
                 selection_mode="single-row", key="recent_table")
    picked = st.session_state.get("recent_table", {}).get("selection", {}).get("rows", [])
    did = df["decision_id"].iloc[picked[0]] if picked else df["decision_id"].iloc[0]
    st.subheader(f"Decision {did}")
    st.caption("Every action of the catalog: where it stopped and why, or its priority factors.")
    st.dataframe(queries.candidates_of(con, did), hide_index=True, use_container_width=True)
