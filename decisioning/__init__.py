"""The Klartext next-best-action engine (strategy, policies, models, arbitration, scenarios)."""

import os

# scikit-learn's OpenMP threads spin while idle by default; between the engine's many short
# model calls that spinning takes the CPU from the decision log's writer thread (measured:
# 14.9 s -> 12.0 s for 100,000 decisions with logging on 2 cores).  A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
