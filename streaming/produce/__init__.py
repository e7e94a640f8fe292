"""Produce: a Kafka producer of events in the service's contract."""
