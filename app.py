"""Klartext dashboard: `streamlit run app.py [-- --db PATH]` (or set KLARTEXT_DB)."""

import streamlit as st

from pages.common import live_run

st.set_page_config(page_title="Klartext", page_icon=":material/search:", layout="wide")
nav = st.navigation({
    "Governance": [
        st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
        st.Page("pages/tradeoffs.py", title="KPI trade-offs", icon=":material/balance:"),
    ],
    "Decisions": [
        st.Page("pages/replay.py", title="Decision replay", icon=":material/replay:"),
        st.Page("pages/customer.py", title="Customer history", icon=":material/person_search:"),
        st.Page("pages/funnel.py", title="Funnel & policies", icon=":material/filter_alt:"),
    ],
    "Models": [
        st.Page("pages/explanations.py", title="Explanations", icon=":material/insights:"),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
        st.Page("pages/integrity.py", title="Integrity", icon=":material/verified_user:"),
    ],
})
with live_run():  # while `klartext serve` holds the log, each run reads its freshest replica
    nav.run()
