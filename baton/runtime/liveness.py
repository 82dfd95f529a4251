"""Whether any worker serves a task queue now, asked of the server (never of a worker).

`approve` uses it to choose between the `decide` Update (a worker answers at once)
and the durable signal (kept until a worker runs the run); `watch` to say, within
seconds, that nobody is running the run it watches.

What the server knows: the task queue's pollers, each with the time it last began a
poll. A live worker begins one at least every minute even when idle (measured here:
the last access of an idle worker's pollers is 0-60 s old), so a queue with no poll
for `POLLER_SILENCE` has no worker. A worker that stops cleanly says so at once with
its last heartbeat (`ListWorkers`: status shutting down); a poller whose worker has
said so since its last poll is not counted. A worker killed with -9 says nothing:
it is counted for up to `POLLER_SILENCE`. Servers without worker heartbeats (older
than 1.29, or with them off) are judged by the pollers alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType, WorkerStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListWorkersRequest
from temporalio.client import Client
from temporalio.service import RPCError

POLLER_SILENCE = timedelta(seconds=70)
_STOPPED = (WorkerStatus.WORKER_STATUS_SHUTTING_DOWN, WorkerStatus.WORKER_STATUS_SHUTDOWN)


async def serving_workers(client: Client, task_queue: str) -> list[str]:
    """The identities of the workers that may be serving `task_queue`'s workflows now
    (empty: none is)."""
    response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    now = datetime.now(UTC)
    polled: dict[str, datetime] = {}
    for poller in response.pollers:
        last = poller.last_access_time.ToDatetime(tzinfo=UTC)
        if now - last < POLLER_SILENCE:
            polled[poller.identity] = max(last, polled.get(poller.identity, last))
    if not polled:
        return []
    stopped = await _stopped_since(client, task_queue)
    return sorted(identity for identity, last in polled.items()
                  if stopped.get(identity, last) <= last)


async def _stopped_since(client: Client, task_queue: str) -> dict[str, datetime]:
    """When each worker of `task_queue` that said it stopped said so, by identity."""
    try:
        response = await client.workflow_service.list_workers(ListWorkersRequest(
            namespace=client.namespace, query=f"TaskQueue = '{_quoted(task_queue)}'"))
    except RPCError:
        return {}  # no worker heartbeats on this server: the pollers alone
    stopped: dict[str, datetime] = {}
    for info in response.workers_info:
        beat = info.worker_heartbeat
        if beat.status in _STOPPED:
            when = beat.heartbeat_time.ToDatetime(tzinfo=UTC)
            stopped[beat.worker_identity] = max(when, stopped.get(beat.worker_identity, when))
    return stopped


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
