"""Baton over HTTP: `starter.py serve` (an AG-UI event stream per run, runs, sessions
and approvals as JSON, and the web console), and the run report (`starter.py report`).

Nothing here keeps state between requests: every answer is read from Temporal, so
any number of `serve` processes may stand behind one load balancer.
"""
