"""Every workflow a Baton worker registers: one per row of the pattern table
(`baton.core.runs.PATTERNS`, which names each by its workflow type), and the others."""

from baton.core.runs import PATTERNS
from baton.workflows.base import PatternWorkflow
from baton.workflows.breakers import BreakerReportWorkflow
from baton.workflows.fanout import FanOutShardWorkflow, FanOutWorkflow
from baton.workflows.flow import FlowWorkflow
from baton.workflows.members import AgentWorkflow
from baton.workflows.pipeline import PipelineWorkflow
from baton.workflows.session import SessionWorkflow
from baton.workflows.supervisor import SupervisorWorkflow
from baton.workflows.triage import TriageWorkflow

# By workflow type: each is declared with a bare @workflow.defn, so its class name.
_PATTERN_CLASSES: dict[str, type[PatternWorkflow]] = {
    cls.__name__: cls for cls in (TriageWorkflow, FanOutWorkflow, SupervisorWorkflow,
                                  PipelineWorkflow, AgentWorkflow)}
# The workflow that runs each pattern of the table, found by the type name it gives.
PATTERN_CLASSES: dict[str, type[PatternWorkflow]] = {
    name: _PATTERN_CLASSES[pattern.workflow] for name, pattern in PATTERNS.items()}

ALL_WORKFLOWS = [*PATTERN_CLASSES.values(), FanOutShardWorkflow, BreakerReportWorkflow,
                 SessionWorkflow, FlowWorkflow]
