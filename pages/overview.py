import streamlit as st

from decision_log import queries
from explain import figures
from pages.common import catalog, filters, fmt, lang, log, money, table, tr

st.title(tr("overview.title"))
st.caption(tr("overview.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
names, currency = catalog(lg)
lg_lang = lang()
f = filters(con)
k = queries.kpis(con, f)
if not k["decisions"]:
    st.warning(tr("overview.no_decisions"))
    st.stop()
n, pct = fmt()
m = st.columns(3) + st.columns(3)  # two rows of three: no label or figure is cut off
m[0].metric(tr("overview.decisions"), n(k["decisions"]))
m[1].metric(tr("overview.with_action"), pct(k["with_action"] / k["decisions"]))
if k["with_outcome"]:
    m[2].metric(tr("overview.acceptance"), pct(k["acceptance_rate"]),
                help=tr("overview.acceptance_help", n=n(k["with_outcome"])))
    m[3].metric(tr("overview.margin"), money(k["margin"], currency, 0), help=tr("overview.margin_help"))
else:
    m[2].metric(tr("overview.acceptance"), tr("overview.no_outcomes"), help=tr("overview.no_outcomes_help"))
    m[3].metric(tr("overview.margin"), tr("overview.no_outcomes"))
if k["churn_reached"] is not None and k["churn_not_reached"] is not None:
    m[4].metric(tr("overview.churn_reached"), pct(k["churn_reached"]),
                tr("overview.churn_delta", pp=n((k["churn_reached"] - k["churn_not_reached"]) * 100, 1, sign=True)),
                delta_color="inverse")
    m[5].metric(tr("overview.churn_not_reached"), pct(k["churn_not_reached"]),
                help=tr("overview.churn_not_reached_help", n=n(k["n_not_reached"])))

changes = queries.strategy_changes(con)
st.subheader(tr("overview.trends"))
grain = st.radio(tr("overview.per"), ["day", "week", "month"], index=1, horizontal=True, key="trend_grain",
                 format_func=lambda g: tr(f"overview.grain_{g}"))
st.plotly_chart(figures.trends(queries.trends(con, f, grain), changes, currency, lg_lang), width="stretch",
                key="trends")
st.caption(tr("overview.trends_caption"))
daily = queries.daily(con, f)
bars = queries.bar_grain(daily)  # a long period in weeks or months: a bar per day would be a thousand
daily = queries.per_period(daily, bars)
st.subheader(tr(f"overview.shown_per_{bars}"))
st.plotly_chart(figures.timeline(daily, changes, lang=lg_lang, y_title=tr("overview.actions_shown")), width="stretch",
                key="timeline")
st.subheader(tr(f"overview.margin_per_{bars}"))
st.plotly_chart(figures.timeline(daily, changes, value="margin", lang=lg_lang,
                                 y_title=tr("fig.margin_currency", currency=currency)), width="stretch",
                key="timeline_m")

st.subheader(tr("overview.action_mix"))
by = st.radio(tr("overview.by"), ["issue", "group", "channel", "action_id"], horizontal=True, key="mix_by",
              format_func=lambda b: tr(f"by.{b}"))
mix = queries.action_mix(con, f, by)
c1, c2 = st.columns(2)
c1.plotly_chart(figures.bars(mix, "contacts", "key", title=tr("overview.actions_shown")), width="stretch",
                key="mix_contacts")
c2.plotly_chart(figures.bars(mix.sort_values("margin", ascending=False), "margin", "key",
                             title=tr("overview.margin_of_accepted"), color="#2e7d32"), width="stretch",
                key="mix_margin")
table(mix, f"action_mix_by_{by}")
if len(changes) > 1:
    st.subheader(tr("overview.strategy_versions"))
    table(changes, "strategy_versions")
