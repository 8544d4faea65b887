"""Plotly figure builders: data in, figure out — no Streamlit, so each is unit-testable."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from decisioning.strategy import STAGES

_LABELS = {
    "eligibility": "Eligibility",
    "applicability": "Applicability",
    "suitability": "Suitability",
    "contact": "Contact policy",
    "incentive": "Other incentive level won",
    "arbitration": "Below no-action threshold",
    "ranked": "Ranked, not shown",
    "selected": "Selected",
}


def stage_funnel(counts: pd.DataFrame) -> go.Figure:
    """Horizontal bars: candidates stopping at each stage, in stage order.

    Parameters
    ----------
    counts : DataFrame
        Columns ``stage`` and ``candidates`` (see ``decision_log.queries.stage_counts``).
    """
    by_stage = dict(zip(counts["stage"], counts["candidates"]))
    stages = [s for s in STAGES if s in by_stage] + [s for s in by_stage if s not in STAGES]
    fig = go.Figure(go.Bar(
        x=[by_stage[s] for s in stages],
        y=[_LABELS.get(s, s) for s in stages],
        orientation="h",
        marker_color=["#2e7d32" if s == "selected" else "#90a4ae" if s == "ranked" else "#c62828" for s in stages],
        hovertemplate="%{y}: %{x:,} candidates<extra></extra>",
    ))
    fig.update_layout(yaxis={"autorange": "reversed"}, xaxis_title="candidate actions", margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      height=320)
    return fig
