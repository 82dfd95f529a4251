"""Start Baton runs and print what happened: `python starter.py --help`."""

from baton.cli.starter import run

if __name__ == "__main__":
    run()
