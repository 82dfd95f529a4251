"""Deterministic orchestration: the four patterns and the single-agent child workflow.

Deliberately empty: Temporal's sandbox re-imports a workflow's module (and so this
package) for every workflow run, so importing all patterns here would make every
run pay for all of them. The list of workflows lives in `workflows.registry`.
"""
