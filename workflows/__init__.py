"""Deterministic orchestration: the four patterns and the single-agent child workflow."""

from workflows.fanout import FanOutWorkflow
from workflows.members import AgentWorkflow
from workflows.pipeline import PipelineWorkflow
from workflows.supervisor import SupervisorWorkflow
from workflows.triage import TriageWorkflow

ALL_WORKFLOWS = [TriageWorkflow, FanOutWorkflow, SupervisorWorkflow, PipelineWorkflow,
                 AgentWorkflow]

__all__ = ["ALL_WORKFLOWS", "AgentWorkflow", "FanOutWorkflow", "PipelineWorkflow",
           "SupervisorWorkflow", "TriageWorkflow"]
