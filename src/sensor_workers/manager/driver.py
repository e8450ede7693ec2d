"""Drive one worker's lifecycle over its services: probe -> configure -> activate, and deactivate.

Asynchronous and used from the manager's executor thread only: every request is `call_async`,
and its answer comes back as a callback of that thread. The manager never waits on a worker.

A freshly spawned worker's services exist before this side has discovered them, and a request
sent before that is simply lost; so the driver first *probes*: it asks `get_state` every
`PROBE_PERIOD_S` until one answer comes, then takes the worker from the state it reports (an
autostarted worker may be `active` already). Answers that belong to an earlier run (the worker
was replaced or stopped meanwhile) are dropped.
"""

from collections.abc import Callable
from functools import partial

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node
from rclpy.task import Future

# How often a freshly spawned worker is asked for its lifecycle state until it answers: the
# answer proves its services are discovered (a request sent earlier is simply lost).
PROBE_PERIOD_S = 0.05

_TRANSITIONS = {'configure': Transition.TRANSITION_CONFIGURE,
                'activate': Transition.TRANSITION_ACTIVATE}


class LifecycleDriver:
    """Brings the worker named `name` to `active`; reports `on_active()` or `on_failed(reason)`."""

    def __init__(self, node: Node, name: str, on_active: Callable[[], None],
                 on_failed: Callable[[str], None]) -> None:
        self.name = name
        self._node = node
        self._on_active = on_active
        self._on_failed = on_failed
        self._change_state = node.create_client(ChangeState, f'/{name}/change_state')
        self._get_state = node.create_client(GetState, f'/{name}/get_state')
        # '' (idle), 'probe', 'configure' or 'activate'.
        self.step = ''
        self._next_probe_at = 0.0
        self._probes: list[Future] = []
        # Bumped by every start and cancel: an answer of an older run is dropped.
        self._run = 0

    def start(self, now: float) -> None:
        """Begin with a probe of the (new) worker process."""
        self.cancel()
        self.step = 'probe'
        self._next_probe_at = now

    def cancel(self) -> None:
        """Forget the current run; its pending answers will be dropped."""
        self._run += 1
        self.step = ''
        for future in self._probes:
            if not future.done():
                self._get_state.remove_pending_request(future)
        self._probes.clear()

    def tick(self, now: float) -> None:
        """Probe again if it is time (call on every manager tick)."""
        if self.step != 'probe' or now < self._next_probe_at:
            return
        self._next_probe_at = now + PROBE_PERIOD_S
        if not self._get_state.service_is_ready():
            return
        future = self._get_state.call_async(GetState.Request())
        future.add_done_callback(partial(self._on_probe_answer, self._run))
        self._probes.append(future)

    def deactivate(self, on_done: Callable[[Future], None]) -> bool:
        """Ask the worker to deactivate; False when its service is not there to ask."""
        self.cancel()
        if not self._change_state.service_is_ready():
            return False
        request = ChangeState.Request()
        request.transition.id = Transition.TRANSITION_DEACTIVATE
        self._change_state.call_async(request).add_done_callback(on_done)
        return True

    def destroy(self) -> None:
        self.cancel()
        self._node.destroy_client(self._change_state)
        self._node.destroy_client(self._get_state)

    def _on_probe_answer(self, run: int, future: Future) -> None:
        if run != self._run or self.step != 'probe' or future.cancelled():
            return
        self.cancel()
        label = future.result().current_state.label
        self._node.get_logger().debug(f'{self.name} answers: {label}')
        if label == 'unconfigured':
            self._transition('configure')
        elif label == 'inactive':
            self._transition('activate')
        elif label == 'active':
            self._on_active()
        else:
            self._on_failed(f'worker is {label}')

    def _transition(self, step: str) -> None:
        self.step = step
        request = ChangeState.Request()
        request.transition.id = _TRANSITIONS[step]
        future = self._change_state.call_async(request)
        future.add_done_callback(partial(self._on_changed, self._run, step))

    def _on_changed(self, run: int, step: str, future: Future) -> None:
        if run != self._run or self.step != step or future.cancelled():
            return
        if not future.result().success:
            self.step = ''
            self._on_failed(f'{step} failed (see the {self.name} log)')
        elif step == 'configure':
            self._transition('activate')
        else:
            self.step = ''
            self._on_active()
