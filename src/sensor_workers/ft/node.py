"""The `ft` worker: a Bota Gen0 F/T sensor as a ROS 2 lifecycle node in its own process.

The read loop runs in its own thread and does all the work of a sample itself: read, map the
stamp, subtract the tare offset, hand the message to the loop publisher, beat the heartbeat. It
never waits on DDS: the loop publisher sends from a thread of its own, without the GIL. The
executor thread only serves parameters, services, lifecycle transitions and the 1 Hz
/diagnostics timer, none of which the loop waits for.
"""

from collections import deque
import os
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import WrenchStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Temperature
from std_srvs.srv import Trigger

from sensor_workers import qos
from sensor_workers.diagnostics import ERROR, OK, WARN, make_status
from sensor_workers.ft import protocol
from sensor_workers.ft.backends import BACKENDS, Backend, BackendError, create_backend
from sensor_workers.ft.backends.bota_session import SINC_RANGE as BOTA_DRIVER_SINC_RANGE
from sensor_workers.ft.simulated_sensor import SIM_PORT, OwnSimulator
from sensor_workers.ft.stamping import StampMapper
from sensor_workers.lifetime import child_environment
from sensor_workers.params import accepted, check_choice, declare, refused
from sensor_workers.paths import UDP_PROFILE
from sensor_workers.stamps import to_time
from sensor_workers.worker import WorkerNode, run_worker

READ_TIMEOUT_S = 0.02  # the loop wakes at least this often without data
TEMPERATURE_RATE_HZ = 10.0
# Parameters that describe the device: they take effect at configure.
DEVICE_PARAMETERS = ('port', 'backend', 'baudrate', 'sinc_length')
FLAG_NAMES = ('throttled', 'overrange', 'invalid')


class FtNode(WorkerNode):
    # Three seconds of samples at 1 kHz (a few hundred bytes each): a killed shared-memory
    # subscriber can freeze this process's DDS writes for 2 s (docs/manager.md, "Fault
    # isolation"), and the read loop goes on meanwhile.
    PUBLISH_QUEUE = 3000
    # Small samples, at 1 kHz, to every subscriber: over loopback UDP, not into their
    # shared-memory ports, whose locks this process would hold for ever if killed in a write
    # (config/fastdds_udp.xml).
    FASTDDS_PROFILE = UDP_PROFILE

    NODE_NAME = 'ft'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._backend: Backend | None = None
        self._sim: OwnSimulator | None = None
        self._device = ''
        self.port: str = declare(
            self, 'port', '/dev/ttyUSB0',
            f'Serial device of the sensor (prefer /dev/serial/by-id/...); "{SIM_PORT}" starts a '
            'simulated sensor as a child process.')
        self.backend_name: str = declare(
            self, 'backend', 'builtin', 'Reader: builtin (our Gen0 reader) or bota_driver.',
            choices=BACKENDS)
        self.baudrate: int = declare(
            self, 'baudrate', 460800, 'Serial baud rate.',
            choices=[str(b) for b in protocol.BAUD_CODES])
        self.sinc_length: int = declare(
            self, 'sinc_length', 64,
            'Sensor filter length; sample period = sinc_length/51200 s (64: 800 Hz, 51: ~1 kHz).'
            f' The bota_driver backend accepts {BOTA_DRIVER_SINC_RANGE[0]}-'
            f'{BOTA_DRIVER_SINC_RANGE[1]} only.', int_range=(51, 2048))
        self.frame_id: str = declare(self, 'frame_id', 'ft_sensor', 'frame_id of the messages.')
        self.publish_temperature: bool = declare(
            self, 'publish_temperature', True,
            f'Publish ~/temperature (decimated to about {TEMPERATURE_RATE_HZ:g} Hz).')
        self.tare_samples: int = declare(
            self, 'tare_samples', 500, 'Number of recent samples ~/tare averages.',
            int_range=(1, 20000))
        self.rt_priority: int = declare(
            self, 'rt_priority', 0,
            'SCHED_FIFO priority of the read loop thread (0: normal scheduling); with '
            'bota_driver also of every thread of its reader process. Needs CAP_SYS_NICE or an '
            'rtprio limit; refused priorities are logged as a warning.',
            int_range=(0, 99))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # Created once (not in on_configure): subscribers discover them before data flows, and
        # the qos_overrides parameters are declared only once.
        self._wrench_pub = self.create_lifecycle_publisher(
            WrenchStamped, '~/wrench', qos.SENSOR_STREAM,
            qos_overriding_options=qos.overridable())
        self._temperature_pub = self.create_lifecycle_publisher(
            Temperature, '~/temperature', qos.SENSOR_DATA,
            qos_overriding_options=qos.overridable())
        self.create_service(Trigger, '~/tare', self._on_tare)

        self._recent: deque[tuple[float, ...]] = deque(maxlen=self.tare_samples)
        self._offset: tuple[float, ...] = (0.0,) * 6
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.samples = 0
        self.dropped = 0
        self.flag_counts = dict.fromkeys(FLAG_NAMES, 0)
        self.last_status = 0
        self.last_temperature = float('nan')
        self.rt_active = False

    # Parameters

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        values = {p.name: p.value for p in parameters}
        reason = self._check(
            values.get('backend', self.backend_name),
            values.get('baudrate', self.baudrate),
            values.get('sinc_length', self.sinc_length),
            values.get('port', self.port))
        if reason:
            return refused(reason)
        changed = [name for name in DEVICE_PARAMETERS if name in values]
        if changed and self._backend is not None:
            return refused(f'{", ".join(changed)} can only change while unconfigured '
                           '(deactivate and clean up first)')
        for name in ('port', 'backend', 'baudrate', 'sinc_length', 'frame_id',
                     'publish_temperature'):
            if name in values:
                setattr(self, 'backend_name' if name == 'backend' else name, values[name])
        if 'tare_samples' in values:
            self._recent = deque(self._recent, maxlen=values['tare_samples'])
        if 'rt_priority' in values:
            self.rt_priority = values['rt_priority']
        return accepted()

    @staticmethod
    def _check(backend: str, baudrate: int, sinc_length: int, port: str) -> str | None:
        reason = check_choice('backend', backend, BACKENDS)
        if reason:
            return reason
        if baudrate not in protocol.BAUD_CODES:
            return (f'baudrate must be one of {", ".join(map(str, protocol.BAUD_CODES))} '
                    f'(got {baudrate})')
        low, high = BOTA_DRIVER_SINC_RANGE
        if backend == 'bota_driver' and not low <= sinc_length <= high:
            return (f'the bota_driver backend accepts sinc_length {low}-{high} only '
                    f'(got {sinc_length}); use the builtin backend for faster rates')
        if not port:
            return 'port must not be empty'
        return None

    # Lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            reason = self._check(self.backend_name, self.baudrate, self.sinc_length, self.port)
            if reason:
                raise BackendError(reason)
            self._device = self._start_sim() if self.port == SIM_PORT else self.port
            backend = create_backend(
                self.backend_name, self._device, self.baudrate, self.sinc_length)
            backend.configure()
        except Exception as error:  # noqa: BLE001 one line and FAILURE, never a traceback
            self.get_logger().error(f'configure failed: {error}')
            self._stop_sim()
            return TransitionCallbackReturn.FAILURE
        self._backend = backend
        self.get_logger().info(
            f'configured {self.backend_name} on {self._device} at '
            f'{1.0 / protocol.sample_period_s(self.sinc_length):.1f} Hz')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configured_backend().start(self.rt_priority)
        except Exception as error:  # noqa: BLE001 one line and FAILURE, never a traceback
            self.get_logger().error(f'activate failed: {error}')
            return TransitionCallbackReturn.FAILURE
        self._reset_counters()
        self.heartbeat.reset()
        self.pace_publishing(1.0 / protocol.sample_period_s(self.sinc_length)
                             + TEMPERATURE_RATE_HZ)
        return self.activate_loop(state, self._loop, 'ft-read-loop')

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.stop_loop()
        self.flush_publishing()
        try:
            self._configured_backend().stop()
        except BackendError as error:
            self.get_logger().warning(f'deactivate: {error}')
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def release_hardware(self) -> None:
        self.stop_loop()
        self._close()

    def _configured_backend(self) -> Backend:
        """Return the backend; the lifecycle activates and deactivates configured nodes only."""
        if self._backend is None:
            raise RuntimeError('the node is not configured')
        return self._backend

    def _close(self) -> None:
        if self._backend is not None:
            try:
                self._backend.close()
            except BackendError as error:
                self.get_logger().warning(f'close: {error}')
            self._backend = None
        self._stop_sim()

    # Simulated sensor

    def _start_sim(self) -> str:
        """Start `bota_sim` as a child process and return its stable port link."""
        sim = OwnSimulator(self.sinc_length)
        try:
            process = sim.start({**os.environ, **child_environment(), 'PYTHONUNBUFFERED': '1'})
        except RuntimeError as error:
            raise BackendError(str(error)) from error
        self._sim = sim
        self.get_logger().info(
            f'simulated sensor pid {process.pid} on {sim.sensor.link} '
            f'(fault injection: {sim.sensor.control})')
        return str(sim.sensor.link)

    def _stop_sim(self) -> None:
        if self._sim is not None:
            self._sim.stop()
            self._sim = None

    # Tare

    def _on_tare(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        recent = self._recent.copy()  # deque.copy() is atomic under the GIL
        if self.loop_thread is None or not recent:
            response.success = False
            response.message = 'not streaming: activate the node first'
            return response
        offset = tuple(sum(axis) / len(recent) for axis in zip(*recent, strict=True))
        self._offset = offset  # one reference assignment: the loop sees old or new, never half
        response.success = True
        response.message = (f'tared over {len(recent)} samples; offset ' +
                            ' '.join(f'{v:.4f}' for v in offset))
        self.get_logger().info(response.message)
        return response

    # The read loop

    def _apply_rt_priority(self) -> None:
        if self.rt_priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))
            self.rt_active = True
            self.get_logger().info(f'read loop runs with SCHED_FIFO {self.rt_priority}')
        except (PermissionError, OSError) as error:
            self.get_logger().warning(
                f'rt_priority {self.rt_priority} refused ({error}): the read loop runs with '
                'normal priority and may be late under load. Grant CAP_SYS_NICE or an rtprio '
                'limit (limits.conf, systemd LimitRTPRIO=).')

    def _loop(self) -> None:
        self._apply_rt_priority()
        try:
            self._read_samples()
        except Exception as error:  # noqa: BLE001 one line, then the heartbeat stops
            if self.context.ok():
                self.get_logger().error(f'read loop stopped: {error!r}')
            # else: SIGINT/SIGTERM shut the context down under us; run_worker cleans up.

    def _read_samples(self) -> None:
        backend = self._configured_backend()
        heartbeat = self.heartbeat
        clock = self.get_clock()
        wrench_pub, temperature_pub = self._wrench_pub, self._temperature_pub
        publish = self.loop_publisher.submit
        period_us = protocol.sample_period_s(self.sinc_length) * 1e6
        temperature_every = max(1, round(1e6 / period_us / TEMPERATURE_RATE_HZ))
        unwrapper = protocol.TimestampUnwrapper()
        mapper = StampMapper()
        generation = -1
        last_us: int | None = None
        msg = WrenchStamped()
        wrench = msg.wrench
        while not self.loop_stop.is_set():
            frame = backend.read(READ_TIMEOUT_S)
            if frame is None:
                if backend.error:
                    heartbeat.beat(self.samples, self.dropped, ERROR,
                                   f'sensor lost: {backend.error}', self._device)
                else:
                    heartbeat.beat(self.samples, self.dropped, WARN, 'no data', self._device)
                continue
            host_ns = clock.now().nanoseconds
            if backend.generation != generation:
                generation = backend.generation
                unwrapper.reset()
                mapper.reset()
                last_us = None
            sensor_us = unwrapper.unwrap(frame.timestamp_us)
            if last_us is not None:
                missing = round((sensor_us - last_us) / period_us) - 1
                if missing > 0:
                    self.dropped += missing
            last_us = sensor_us
            stamp_ns = mapper.stamp(sensor_us, host_ns)
            raw = frame.wrench
            self._recent.append(raw)
            offset = self._offset
            msg.header.stamp = to_time(stamp_ns)
            msg.header.frame_id = self.frame_id
            force, torque = wrench.force, wrench.torque
            force.x, force.y, force.z = raw[0] - offset[0], raw[1] - offset[1], raw[2] - offset[2]
            torque.x, torque.y, torque.z = (raw[3] - offset[3], raw[4] - offset[4],
                                            raw[5] - offset[5])
            publish(wrench_pub, msg)
            self.samples += 1
            self.last_temperature = frame.temperature
            if self.publish_temperature and self.samples % temperature_every == 0:
                publish(temperature_pub, Temperature(
                    header=msg.header, temperature=frame.temperature, variance=0.0))
            self.last_status = frame.status
            if frame.status & (protocol.THROTTLED | protocol.OVERRANGE | protocol.INVALID):
                for name in frame.flags():
                    if name in self.flag_counts:
                        self.flag_counts[name] += 1
                heartbeat.beat(self.samples, self.dropped, WARN,
                               'sensor flags: ' + ','.join(frame.flags()), self._device)
            else:
                heartbeat.beat(self.samples, self.dropped, OK, 'streaming', self._device)

    # Diagnostics

    def diagnostic_status(self) -> DiagnosticStatus:
        backend = self._backend
        values: dict[str, object] = {
            'port': self._device or self.port,
            'backend': self.backend_name,
            'sinc_length': self.sinc_length,
            'rate_hz': self.heartbeat.rate_hz if self.loop_thread is not None else 0.0,
            'samples': self.samples,
            'dropped': self.dropped,
            'queue_dropped': self.loop_publisher.dropped,
            'queue_depth': self.loop_publisher.depth,
            'publish_failed': self.loop_publisher.failed,
            'status_flags': ','.join(protocol.Frame(self.last_status, (0.0,) * 6, 0, 0.0)
                                     .flags()) or 'none',
            **{f'{name}_frames': count for name, count in self.flag_counts.items()},
            'temperature': self.last_temperature,
            'tare_offset': ' '.join(f'{v:.4f}' for v in self._offset),
            'rt_priority': self.rt_priority if self.rt_active else 0,
        }
        if backend is None:
            level, message = OK, 'unconfigured'
        else:
            values.update(backend.counters())
            if backend.error:
                level, message = ERROR, f'sensor lost: {backend.error}'
            elif self.loop_thread is None:
                level, message = OK, 'inactive'
            elif self.last_status & (protocol.OVERRANGE | protocol.INVALID | protocol.THROTTLED):
                level, message = WARN, 'sensor flags set'
            else:
                level, message = OK, 'streaming'
        return make_status(self.get_fully_qualified_name(), level, message, self._device, values)


def main(args: list[str] | None = None) -> None:
    run_worker(FtNode, args)


if __name__ == '__main__':
    main()
