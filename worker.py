"""Baton's worker: `python worker.py [--app MODULE]` (see baton/cli/worker.py)."""

from baton.cli.worker import run

if __name__ == "__main__":
    run()
