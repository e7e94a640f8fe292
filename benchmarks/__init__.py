"""Benchmarks of the service against its ceiling and a hand-written consumer, in one run.

``scripts/benchmark`` (``python -m benchmarks``) pre-loads a topic and measures, on the same
data: drain throughput, end-to-end latency at fixed offered loads, time to first prediction,
peak memory, Spark jobs per batch and the cost of malformed events. Not shipped in the wheel.
"""
