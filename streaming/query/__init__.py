"""Query: the long-running query that ties source, parse, score and sink together, and its state."""
