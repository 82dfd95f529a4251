"""Every workflow a Baton worker registers."""

from baton.workflows.breakers import BreakerReportWorkflow
from baton.workflows.fanout import FanOutShardWorkflow, FanOutWorkflow
from baton.workflows.flow import FlowWorkflow
from baton.workflows.members import AgentWorkflow
from baton.workflows.pipeline import PipelineWorkflow
from baton.workflows.session import SessionWorkflow
from baton.workflows.supervisor import SupervisorWorkflow
from baton.workflows.triage import TriageWorkflow

ALL_WORKFLOWS = [TriageWorkflow, FanOutWorkflow, FanOutShardWorkflow, SupervisorWorkflow,
                 PipelineWorkflow, AgentWorkflow, BreakerReportWorkflow, SessionWorkflow,
                 FlowWorkflow]
