"""ManagerNode: spawns one worker process per device, drives its lifecycle, keeps it healthy.

Everything that touches device state runs in the executor thread: process exits (reaper
threads) and spawn results (the spawner thread) are queued and a guard condition wakes the
executor, so an exit is handled within milliseconds without locks. Service calls to the workers
are asynchronous; the executor never waits on a worker.

Heartbeats come through a pipe per worker (heartbeat.py), read on every tick, and are judged by
`liveness.py` from their send times: no DDS stall, in the worker or here, can fake a dead worker.

What the node knows of each device is a `Device` (device.py); the states, diagnostics and
events it publishes of them are built in `reporting.py`.
"""

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
import logging
from pathlib import Path
import queue
import signal
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future as RclpyFuture
from std_srvs.srv import Trigger

from sensor_workers import paths, qos
from sensor_workers.autostart import start_when_spinning
from sensor_workers.lifetime import die_with_parent
from sensor_workers.manager import config, reporting
from sensor_workers.manager.device import Device
from sensor_workers.manager.driver import LifecycleDriver
from sensor_workers.manager.liveness import Liveness, Verdict
from sensor_workers.manager.policy import Event, RestartPolicy
from sensor_workers.manager.process import Spawner, WorkerProcess, WorkerSpec, tune
from sensor_workers.manager.standbys import WarmStandby
from sensor_workers.manager.states import ERROR, Action, DeviceState
from sensor_workers.topics import DIAGNOSTICS, WORKER_EVENTS

TICK_S = 0.02
STATES_PERIOD_S = 0.5
DIAGNOSTICS_PERIOD_S = 1.0
# Extra time for the first heartbeat after activation (the loop thread is just starting).
FIRST_BEAT_GRACE_S = 1.0
# On a graceful stop, how long to wait for `deactivate` before SIGTERM.
DEACTIVATE_TIMEOUT_S = 0.5


class ManagerNode(LifecycleNode):
    """Supervisor of the device workers (`camera`, `ft`)."""

    def __init__(self, default_config: Path | None = None, **kwargs: Any) -> None:
        super().__init__('manager', **kwargs)
        self._default_config = default_config
        config.declare_parameters(self)
        # Read-only, and asked for on every tick (standby upkeep and the published state).
        self._warm_standby: bool = self.get_parameter('warm_standby').value
        self._events = self.create_publisher(
            DiagnosticStatus, WORKER_EVENTS, qos.LATCHED_EVENTS)
        # `/manager/device_states` under the default name; follows a renamed manager, as the
        # restart services do (the bridge's `manager_name`).
        self._states = self.create_publisher(DiagnosticArray, '~/device_states', qos.LATCHED)
        self._diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS, qos.DIAGNOSTICS)
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake = self.create_guard_condition(self._drain_inbox)
        self._spawner = Spawner()
        self._devices: dict[str, Device] = {}
        self._stopping = False
        self._last_signature: tuple = ()
        self._last_tick = time.monotonic()
        # Set once a requested shutdown has no child process left.
        self.all_stopped = threading.Event()
        self.create_timer(TICK_S, self._tick)
        self.create_timer(STATES_PERIOD_S, self._publish_states)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if self.get_parameter('autostart').value:
            start_when_spinning(self)

    def _config_file(self) -> Path:
        """Return the workers' parameter file (config.config_file)."""
        return config.config_file(self, self._default_config)

    # Own lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            policy_config = config.policy_config(self)
            specs = config.worker_specs(self, self._config_file())
        except (ValueError, FileNotFoundError) as error:
            self.get_logger().error(f'configure failed: {error}')
            return TransitionCallbackReturn.FAILURE
        for spec in specs:
            self._devices[spec.name] = self._supervise(spec, RestartPolicy(policy_config))
        self.get_logger().info(
            f'supervising {", ".join(self._devices) or "no device"} with {self._config_file()}')
        return TransitionCallbackReturn.SUCCESS

    def _supervise(self, spec: WorkerSpec, policy: RestartPolicy) -> Device:
        """Return the Device of `spec`, with its lifecycle driver and `~/<name>/restart`."""
        name = spec.name
        driver = LifecycleDriver(self, name, on_active=partial(self._on_worker_active, name),
                                 on_failed=partial(self._on_worker_start_failed, name))
        restart = self.create_service(
            Trigger, f'~/{name}/restart', partial(self._on_restart, name))
        return Device(spec, policy, WarmStandby(self._warm_standby), driver, restart)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._stopping = False
        self.all_stopped.clear()
        now = time.monotonic()
        for device in self._devices.values():
            self._apply(device, device.policy.start(now))
        self._publish_states()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_all()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        if any(not device.all_gone() for device in self._devices.values()):
            self.get_logger().error('cleanup refused: worker processes are still stopping')
            return TransitionCallbackReturn.FAILURE
        for device in self._devices.values():
            device.driver.destroy()
            self.destroy_service(device.restart_service)
        self._devices.clear()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_all()
        return TransitionCallbackReturn.SUCCESS

    def request_shutdown(self) -> None:
        """Stop every worker (thread-safe; e.g. from a signal handler's thread)."""
        self._post(self._stop_all)

    def close(self) -> None:
        """Release the spawner thread once every child is gone."""
        self._spawner.close()

    def _stop_all(self) -> None:
        self._stopping = True
        now = time.monotonic()
        for device in self._devices.values():
            self._apply(device, device.policy.request_stop(now))
            device.standby.drop(config.seconds(self, 'stop_timeout_ms'))
        self._check_stopped()

    def _check_stopped(self) -> None:
        if self._stopping and all(d.all_gone() for d in self._devices.values()):
            self.all_stopped.set()

    # Inputs from other threads

    def _post(self, handler: Callable[[], None]) -> None:
        """Have the executor thread call `handler` (thread-safe)."""
        self._inbox.put(handler)
        self._wake.trigger()

    def _drain_inbox(self) -> None:
        while True:
            try:
                handler = self._inbox.get_nowait()
            except queue.Empty:
                return
            handler()

    # Processes

    def _apply(self, device: Device, actions: Sequence[Action]) -> None:
        for action in actions:
            if action is Action.SPAWN:
                self._spawn(device)
            elif action is Action.KILL:
                device.terminate(config.seconds(self, 'kill_timeout_ms'))
            elif action is Action.STOP:
                self._stop(device)
        self._publish_events(device, device.policy.drain_events())

    def _spawn(self, device: Device) -> None:
        standby = device.standby.take()
        device.reset_runtime()
        device.generation += 1
        generation = device.generation
        if standby is not None:
            # Real-time settings only now: a standby importing at the live worker's priority
            # starved it.
            for warning in tune(standby.pid, device.spec):
                self.get_logger().warning(f'{device.name}: {warning}')
            if standby.go():
                device.process = standby
                self.get_logger().info(f'{device.name}: standby pid {standby.pid} takes over')
                device.driver.start(time.monotonic())
                return

        def on_exit(process: WorkerProcess, code: int) -> None:
            self._post(partial(self._on_exit, device, generation, process, code, time.monotonic()))

        future = self._spawner.spawn(device.spec, on_exit)
        future.add_done_callback(
            lambda f: self._post(partial(self._on_spawned, device, generation, f)))

    def _on_spawned(self, device: Device, generation: int,
                    future: 'Future[tuple[WorkerProcess, list[str]]]') -> None:
        now = time.monotonic()
        try:
            process, warnings = future.result()
        except OSError as error:
            if generation == device.generation:
                self._apply(device, device.policy.spawn_failed(str(error), now))
            return
        if generation != device.generation:
            process.kill()
            process.close_heartbeats()
            return
        for warning in warnings:
            self.get_logger().warning(f'{device.name}: {warning}')
        if device.process is None:
            device.process = process
        if not device.policy.process_running:
            return  # it exited already; _on_exit has dealt with it
        self.get_logger().info(f'{device.name}: started pid {process.pid} '
                               f'({device.spec.module})')
        if device.policy.phase is not DeviceState.STARTING:
            # Stopped or failed while it was being spawned.
            device.terminate(config.seconds(self, 'kill_timeout_ms'))
            return
        device.driver.start(now)

    def _on_exit(
        self, device: Device, generation: int, process: WorkerProcess, code: int, when: float
    ) -> None:
        if generation != device.generation:
            return
        device.process_exited(process)
        self.get_logger().info(f'{device.name}: pid {process.pid} exited with code {code}')
        self._apply(device, device.policy.exited(code, when))
        self._check_stopped()
        self._publish_states()

    # Warm standbys

    def _ensure_standby(self, device: Device, now: float) -> None:
        liveness = device.liveness if device.policy.phase is DeviceState.ACTIVE else None
        if not device.standby.wanted(now - liveness.active_at if liveness is not None else None):
            return
        device.standby.pending = True

        def on_exit(process: WorkerProcess, code: int) -> None:
            self._post(partial(self._on_standby_exit, device, process, code, time.monotonic()))

        future = self._spawner.spawn(device.spec, on_exit, standby=True)
        future.add_done_callback(
            lambda f: self._post(partial(self._on_standby_spawned, device, f)))

    def _on_standby_spawned(self, device: Device,
                            future: 'Future[tuple[WorkerProcess, list[str]]]') -> None:
        device.standby.pending = False
        try:
            process, _ = future.result()
        except OSError as error:
            self.get_logger().warning(f'{device.name}: no warm standby: {error}')
            return
        if self._stopping:
            process.close_stdin()
            process.terminate(config.seconds(self, 'stop_timeout_ms'))
        else:
            device.standby.spawned(process)
        self._check_stopped()

    def _on_standby_exit(
        self, device: Device, process: WorkerProcess, code: int, when: float
    ) -> None:
        if process is device.process:  # a standby that took over: a worker like any other
            self._on_exit(device, device.generation, process, code, when)
            return
        process.close_heartbeats()
        if device.standby.exited(process) and not self._stopping:
            self.get_logger().warning(
                f'{device.name}: warm standby pid {process.pid} exited with code {code}')
        self._check_stopped()

    def _stop(self, device: Device) -> None:
        """Deactivate an active worker, then SIGTERM (SIGKILL after stop_timeout_ms)."""
        device.driver.cancel()
        if device.lifecycle_active and device.driver.deactivate(
                partial(self._on_deactivated, device, device.generation)):
            device.terminate_at = time.monotonic() + DEACTIVATE_TIMEOUT_S
        else:
            device.terminate(config.seconds(self, 'stop_timeout_ms'))

    def _on_deactivated(self, device: Device, generation: int, future: RclpyFuture) -> None:
        if generation == device.generation and device.terminate_at is not None:
            device.terminate(config.seconds(self, 'stop_timeout_ms'))

    # Lifecycle of the workers

    def _on_worker_start_failed(self, name: str, reason: str) -> None:
        """Count a start the driver could not bring to `active` as a failure."""
        device = self._devices[name]
        self._apply(device, device.policy.start_failed(reason, time.monotonic()))

    def _on_worker_active(self, name: str) -> None:
        """Take the worker as active (the driver saw it so): judge its liveness from now on."""
        device = self._devices[name]
        now = time.monotonic()
        device.activated(Liveness(config.liveness_config(self, FIRST_BEAT_GRACE_S), now))
        self.get_logger().info(f'{device.name}: active (pid {device.pid})')
        self._apply(device, device.policy.activated(now))

    # Liveness

    def _watch(self, device: Device, now: float, tick_late_s: float) -> None:
        judgement = device.judge(now, tick_late_s)
        if judgement is None:
            return
        verdict = judgement.verdict
        if verdict is Verdict.MISSED and device.process_ended():
            # Killed or crashed, not hung: its exit (`exited`, with the code) is on its way from
            # the thread that waits for it, which a loaded machine may run later than this tick.
            return
        if verdict is Verdict.MISSED:
            self.get_logger().warning(f'{device.name}: heartbeat missed: {judgement.reason}')
            self._apply(device, device.policy.heartbeat_missed(judgement.silence_s, now))
        elif verdict is Verdict.STALLED:
            self._apply(device, device.policy.stalled(judgement.silence_s, now))
        elif verdict is Verdict.LATE and not device.late_reported:
            device.late_reported = True
            self._publish_events(device, [reporting.late_event(judgement)])
        elif verdict is Verdict.MANAGER_LATE:
            self.get_logger().debug(f'not judging {device.name}: {judgement.reason}')

    # Services

    def _on_restart(self, name: str, request: Trigger.Request,
                   response: Trigger.Response) -> Trigger.Response:
        device = self._devices[name]
        if self._stopping:
            response.success = False
            response.message = 'the manager is stopping'
            return response
        self._apply(device, device.policy.request_restart(time.monotonic()))
        response.success = True
        response.message = f'{device.name}: restarting'
        return response

    # Periodic work

    def _tick(self) -> None:
        now = time.monotonic()
        tick_late_s = max(0.0, now - self._last_tick - TICK_S)
        self._last_tick = now
        for device in self._devices.values():
            device.read_heartbeats()
            device.standby.read_ready()
            if device.terminate_at is not None and now >= device.terminate_at:
                device.terminate(config.seconds(self, 'stop_timeout_ms'))
            if self._stopping:
                continue
            device.driver.tick(now)
            self._watch(device, now, tick_late_s)
            self._apply(device, device.policy.transition(now))
            self._ensure_standby(device, now)
        self._check_stopped()
        if reporting.signature(self._devices.values()) != self._last_signature:
            self._publish_states()

    def _publish_events(self, device: Device, events: Sequence[Event]) -> None:
        for event in events:
            self._events.publish(reporting.event_status(device, event, time.time_ns()))
            text = reporting.event_text(device, event)
            if event.level >= ERROR:
                self.get_logger().error(text)
            elif event.level:
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)

    def _publish_states(self) -> None:
        self._last_signature = reporting.signature(self._devices.values())
        self._states.publish(self._device_array(''))

    def _publish_diagnostics(self) -> None:
        self._diagnostics.publish(self._device_array(reporting.DIAGNOSTICS_PREFIX))

    def _device_array(self, prefix: str) -> DiagnosticArray:
        return reporting.device_array(
            self._devices.values(), self.get_clock().now().to_msg(),
            self.get_parameter('heartbeat_timeout_ms').value, time.monotonic_ns(), prefix)


def main(args: list[str] | None = None) -> None:
    """Run the manager until SIGINT/SIGTERM, then stop every worker before exiting."""
    die_with_parent()  # when started by `sensor-workers up`
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    args = sys.argv if args is None else args
    # Our own signal handling: on SIGINT/SIGTERM the workers must still be deactivated over
    # ROS, so the context must outlive the signal.
    # UDP only, like the bridge (config/fastdds_udp.xml): a worker killed while it wrote into a
    # subscriber's shared-memory port froze the manager's next publish to it for 1 s. Each
    # worker swaps the shipped profile it inherits for its own.
    profile = paths.use_fastdds_profile(paths.UDP_PROFILE)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = ManagerNode(default_config=config.params_file_in(args))
    node.get_logger().info(profile.describe())
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        finally:
            stop.set()

    spinner = threading.Thread(target=spin, name='executor', daemon=True)
    spinner.start()
    try:
        while not stop.wait(0.5):
            pass
        node.request_shutdown()
        timeout = config.seconds(node, 'stop_timeout_ms') + 3.0
        if not node.all_stopped.wait(timeout):
            node.get_logger().error('workers did not stop in time')
    finally:
        # The executor thread must be out of rclpy before the node and context go away.
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=2.0)
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
