"""Baton's shared data: agent and team specs, model request/response, run inputs and results.

Pure data only: both the deterministic workflows and the activities import it.
"""
