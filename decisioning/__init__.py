"""The Klartext next-best-action engine (strategy, stages, inputs, models, arbitration, scenarios)."""
