"""Ops: what operators watch: metrics, the per-batch log line, each batch's figures."""
