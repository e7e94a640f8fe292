"""Structured Streaming inference: Kafka events scored by a registered MLflow model into Delta.

Run ``python -m streaming --help``. The service lives in :mod:`streaming.service`, its settings in
:mod:`streaming.settings`, the table contracts in :mod:`streaming.tables`.
"""

import os

# No network calls at log time: MLflow's usage telemetry is off unless the user turns it on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
