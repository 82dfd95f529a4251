"""Floor 1: Baton's pure data, safe inside the workflow sandbox (pydantic only)."""
