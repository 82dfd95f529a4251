"""What a command's flags make of a run: the catalogue it uses (--catalogue, --app,
--model) and its recorded options (budgets, deadline, chaos, streaming). Shared by
`run` (baton/cli/starter.py), `chat` (baton/cli/chat.py) and `serve`
(baton/web/commands.py).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence

from pydantic import ValidationError

from baton.cli.common import UsageError
from baton.core.model_io import Chaos
from baton.core.runs import RunOptions
from baton.core.specs import Catalogue
from baton.define.app import AppError, app_catalogue
from baton.define.catalogue import CatalogueError, describe_errors, load_catalogue


def load_for_run(path: str | None, model: str | None, apps: Sequence[str] = ()) -> Catalogue:
    """The catalogue a command uses: --catalogue (default: the packaged one), or the
    agents and teams of the --app modules when no --catalogue is given."""
    try:
        catalogue = app_catalogue(apps) if apps and path is None else load_catalogue(path, apps)
        return catalogue.with_model(model) if model else catalogue
    except (CatalogueError, AppError) as err:
        raise UsageError(str(err)) from None
    except (ValueError, ValidationError) as err:
        detail = describe_errors(err) if isinstance(err, ValidationError) else f"  - {err}"
        raise UsageError(f"--model {model!r} is not usable:\n{detail}") from None


# The flag that sets each validated field of a run's options (for error messages).
OPTION_FLAGS = {"max_tokens": "--budget-tokens", "max_calls": "--budget-calls",
                "max_usd": "--budget-usd", "max_tool_calls": "--budget-tool-calls",
                "max_seconds": "--deadline", "latency_s": "--latency", "seed": "--seed"}


def run_options(args: argparse.Namespace, catalogue: Catalogue) -> RunOptions:
    """Budget, chaos and model override of this run, recorded in its input; UsageError
    when a value is out of range."""
    try:
        budget = catalogue.budget.limited(
            max_tokens=args.budget_tokens, max_calls=args.budget_calls,
            max_usd=args.budget_usd, max_tool_calls=args.budget_tool_calls,
            max_seconds=args.deadline)
        chaos = None
        if args.chaos or args.latency:
            rate = args.chaos
            # Besides scattered faults, one primary model (picked by the seed) is down for
            # the run, as in a provider outage: its breaker opens and agents fall back.
            primaries = sorted({a.model for a in catalogue.agents.values()})
            down = [random.Random(args.seed).choice(primaries)] if rate and primaries else []
            chaos = Chaos(failure_rate=rate * 0.5, malformed_rate=rate * 0.3,
                          rejection_rate=rate * 0.2, seed=args.seed,
                          latency_s=args.latency or 0, down_models=down)
    except ValidationError as err:
        problems = [f"  - {OPTION_FLAGS.get(str(e['loc'][0]), e['loc'][0])} "
                    f"{e['input']!r}: {e['msg']}" for e in err.errors()]
        raise UsageError("invalid run options:\n" + "\n".join(problems)) from None
    return RunOptions(model_override=args.model, budget=budget, chaos=chaos,
                      stream=getattr(args, "stream", False))
