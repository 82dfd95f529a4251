"""Which module imports a layer above its own (DESIGN.md §1): prints each, exits 1 if any.

Floors: core 1; define and telemetry 2; workflows and activities 3; runtime 4;
cli and web 5. `python scripts/layers.py` (run by `make lint`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"core": 1, "define": 2, "telemetry": 2, "workflows": 3, "activities": 3,
          "runtime": 4, "cli": 5, "web": 5}
IMPORT = re.compile(r"^\s*(?:from|import)\s+baton\.(\w+)")
# A deliberate way up, each explained where it happens: a Baton object called inside
# a workflow runs the workflow layer's step (agent.run, a tool called directly, an
# approval in a flow), and called outside one starts a run through the runtime.
ALLOWED = re.compile(r"#\s*layer: ")


def layer_of(path: Path) -> str | None:
    top = path.relative_to(ROOT).parts
    return top[1] if top[0] == "baton" and len(top) > 2 else top[0]


def upward_imports() -> list[str]:
    found = []
    for folder in ("baton", "workflows", "activities"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            own = FLOORS.get(layer_of(path) or "")
            if own is None:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                match = IMPORT.match(line)
                target = FLOORS.get(match.group(1)) if match else None
                if target is not None and target > own and not ALLOWED.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


if __name__ == "__main__":
    problems = upward_imports()
    print("\n".join(problems) or "every import goes down a layer or stays on its own")
    sys.exit(1 if problems else 0)
