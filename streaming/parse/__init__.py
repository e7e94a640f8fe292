"""Parse: Kafka records judged against the model's signature; what does not fit becomes quarantine
rows (pure DataFrame steps).
"""
