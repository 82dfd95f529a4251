"""The packaged price table.

Prices are USD per million tokens, keyed by "provider:model". The packaged table
(`baton/prices.toml`) is a starting point that goes out of date: a catalogue's
`[prices]` table extends or overrides it. Offline models are free; any other model
with no price costs None (unknown), never 0.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any


def packaged_prices() -> dict[str, Any]:
    """The raw packaged table; validated as part of a catalogue."""
    text = resources.files("baton").joinpath("prices.toml").read_text()
    return dict(tomllib.loads(text)["prices"])
