"""Klartext's command line, decision service and jobs (the application: it owns its process).

scikit-learn's OpenMP threads spin while idle by default; between the engine's many short
model calls that spinning takes the CPU from the decision log's writer thread (a 100,000-
decision demo took 14.9 s instead of 12.0 s on 2 cores).  The application asks for passive
waiting before anything loads OpenMP; the library packages set nothing process-wide, and a
user's own setting wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
