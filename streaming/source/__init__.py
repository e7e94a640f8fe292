"""Source: Spark's Kafka source (options built in one place, checks at start) and the project's own
Kafka clients.
"""
