"""Command-line entry points: the worker (`baton-worker`, `worker.py`) and the starter
(`baton`, `starter.py`). Each parses its arguments, dispatches, and exits with its
true status."""
