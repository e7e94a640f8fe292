"""Batch: the same scoring over a table, for scheduled runs."""
