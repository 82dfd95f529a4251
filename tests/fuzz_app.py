"""A small `--app` module for tests/test_fuzz.py: one tool, two agents, one team."""

from __future__ import annotations

import baton


@baton.tool
def lookup(order_id: str) -> str:
    """Look an order up.

    Args:
        order_id: the order's id, e.g. A-1001
    """
    return f"order {order_id}: shipped"


clerk = baton.Agent("clerk", "Answer questions about orders.", tools=[lookup])
desk_router = baton.Agent("desk_router", "Route order questions.", handoffs=[clerk])
desk = baton.Triage("desk", desk_router)
