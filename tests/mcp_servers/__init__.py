"""MCP servers the tests start as real processes (tests/test_mcp.py)."""
