"""Run one part of `make bench`, appending what it prints and how long it took.

    python bench/run.py OUT PART SCRIPT [ARGS...]

Runs `SCRIPT ARGS` with this interpreter, passes its output through and appends it to
OUT (as `tee -a` would), then appends {"bench": "time", "part": PART, "wall_s": ...,
"status": ...}; exits with the script's status. bench/report.py lists the times, so
one results file says what each part cost as well as what it measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def run_part(out: Path, part: str, command: list[str]) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with out.open("a") as results, subprocess.Popen(
            [sys.executable, *command], stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            results.write(line)
            results.flush()
    status = process.returncode
    with out.open("a") as results:
        results.write(json.dumps({"bench": "time", "part": part,
                                  "wall_s": round(time.perf_counter() - started, 1),
                                  "status": status}) + "\n")
    if status:
        print(f"bench part {part!r} failed (exit {status})", file=sys.stderr)
    return status


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    return run_part(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
