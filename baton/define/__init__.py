"""Floor 2: what users write: agents, teams, flows, tools, guardrails, apps."""
