"""The topic names several processes agree on, in one place (no rclpy: the CLI prints them)."""

WORKER_EVENTS = '/safety/worker_events'
# Published by every node that has something to report (workers, manager), rclpy's convention.
DIAGNOSTICS = '/diagnostics'


def heartbeat_topic(worker: str) -> str:
    """Return the topic of a worker's heartbeat: `~/heartbeat` of the node named `worker`."""
    return f'/{worker}/heartbeat'


def device_states_topic(manager: str) -> str:
    """Return the topic of the manager's device states: `~/device_states` of `manager`."""
    return f'/{manager}/device_states'
