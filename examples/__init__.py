"""Single-file apps to copy: `python examples/NAME.py`, or `--app examples.NAME`."""
