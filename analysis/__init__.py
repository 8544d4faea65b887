"""Analysis over the log: what a strategy would have done on the logged inputs.

``tradeoff`` (margin/retention simulations, the frontier, champion/challenger and the
off-policy reports), ``ope`` (the off-policy estimators: IPS, SNIPS, DR with bootstrap
intervals), ``kernels`` (their compiled loops) and ``imported`` (what-if on imported logs
that carry their four factors).  It reads the log and re-runs the engine; explanations of
single decisions are in :mod:`explain`.
"""
