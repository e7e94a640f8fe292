"""Sink: the predictions and quarantine tables (schemas, row shaping), idempotent Delta appends."""
