"""Every workflow a Baton worker registers."""

from workflows.breakers import BreakerReportWorkflow
from workflows.fanout import FanOutShardWorkflow, FanOutWorkflow
from workflows.members import AgentWorkflow
from workflows.pipeline import PipelineWorkflow
from workflows.supervisor import SupervisorWorkflow
from workflows.triage import TriageWorkflow

ALL_WORKFLOWS = [TriageWorkflow, FanOutWorkflow, FanOutShardWorkflow, SupervisorWorkflow,
                 PipelineWorkflow, AgentWorkflow, BreakerReportWorkflow]
