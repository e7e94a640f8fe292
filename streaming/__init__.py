"""Structured Streaming inference: Kafka events scored by a registered MLflow model into Delta.

Run ``python -m streaming --help``. The flow reads from the folder names: ``source`` (Kafka),
``parse`` (events against the model's signature), ``score`` (the model from the registry),
``sink`` (the Delta tables), ``query`` (the long-running query that ties them together), with
``batch`` (the same scoring over a table), ``produce`` and ``ops`` (status, metrics, logs) beside.
"""
