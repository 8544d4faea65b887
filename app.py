"""Klartext dashboard: `streamlit run app.py [-- --db PATH]` (or set KLARTEXT_DB)."""

import streamlit as st

st.set_page_config(page_title="Klartext", page_icon=":material/search:", layout="wide")
st.navigation([
    st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page("pages/recent.py", title="Recent decisions", icon=":material/receipt_long:"),
]).run()
