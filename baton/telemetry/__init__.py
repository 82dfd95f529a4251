"""Floor 2: replay-safe metrics, tracing and search attributes."""
