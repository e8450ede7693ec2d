"""The `camera` worker: a Basler camera grabbed in its own thread, published as sensor_msgs/Image.

configure opens the camera and applies the parameters; activate starts free-run grabbing in a
dedicated thread that publishes Image and CameraInfo itself (failures, loss and reconnection:
grabber.py); deactivate stops it; cleanup closes the camera. Everything that touches the camera
while the grab thread runs (parameter changes, fault injection) is handed to that thread and
executed between two frames.

Frame accounting, so that lost frames show: `frames_grabbed` counts good buffers from the
camera, `frames_published` the frames published (the heartbeat's `samples`): each one an
Image message, handed to DDS while `~/image_raw` has a subscriber, and a side-channel frame;
`failed_grabs` incomplete buffers, `camera_skipped` gaps in the camera's own frame counter
(the block id of GigE and USB3 Vision: frames the camera produced that never reached us). A
subscriber compares the number of images it received with `frames_published` over the same
window (e.g. between a deactivate and an activate) to find transport losses.
"""

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
import queue
from typing import Any, TypeVar

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from sensor_workers import qos
from sensor_workers.allocator import keep_large_buffers
from sensor_workers.camera import calibration
from sensor_workers.camera.basler import (
    ENCODINGS,
    BaslerCamera,
    CameraError,
    Frame,
    Settings,
)
from sensor_workers.camera.grabber import Grabber, GrabCounters
from sensor_workers.camera.recorder import Record, Recorder, Summary
from sensor_workers.camera.timestamps import TimestampMapper
from sensor_workers.diagnostics import ERROR, OK, WARN, make_status
from sensor_workers.params import accepted, declare, refused
from sensor_workers.side_channel.layout import DEFAULT_SLOTS, channel_path
from sensor_workers.side_channel.writer import ChannelBusy, FrameWriter
from sensor_workers.stamps import to_time
from sensor_workers.worker import WorkerNode, run_worker

WAKE_MS = 50  # the grab loop wakes at least this often, frame or not
FAILED_BUFFERS_PER_REQUEST = 5  # ~/emulator/fail_buffers
REQUEST_TIMEOUT_S = 10.0
T = TypeVar('T')
IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'


def _image_kwargs() -> dict[str, Any]:
    """Let Image adopt an array.array for `data` without copying it (Jazzy: check_fields)."""
    try:
        Image(check_fields=True)
    except (AssertionError, TypeError):  # Humble: no such argument, and no copy anyway
        return {}
    return {'check_fields': True}


class CameraNode(WorkerNode):
    """Lifecycle node `camera`; see the module docstring and docs/camera.md."""

    # Two seconds of frames with their camera_info through a DDS stall (a killed shared-memory
    # subscriber can freeze this process's writes for 2 s, docs/manager.md "Fault isolation"),
    # up to PUBLISH_QUEUE_BYTES: about 2 s of 2 MP frames, less of larger ones.
    PUBLISH_QUEUE = 128
    PUBLISH_QUEUE_BYTES = 128 << 20

    NODE_NAME = 'camera'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Every frame passes through fresh frame-sized buffers (the copy out of pylon, the CDR
        # bytes): glibc's default hands them back to the kernel and faults new pages in for
        # the next frame. Serializing a 2448x2048 Image in a fresh process: 24-30 ms with the
        # default, 1.3-1.6 ms with this (2026-12-07, load ~10); the worker's CPU per frame fell
        # 15-25 % in four A/B runs of bench.camera_throughput (allocator.py).
        keep_large_buffers()
        self._serial: str = declare(
            self, 'serial_number', '', "Camera to open; '' = the first one found.",
            read_only=True)
        self._emulate: bool = declare(
            self, 'emulate', False, "Use pypylon's camera emulator (PYLON_CAMEMU).",
            read_only=True)
        self._frame_id: str = declare(self, 'frame_id', 'camera_optical_frame',
                                      'header.frame_id of images and camera info.')
        self._camera_name: str = declare(self, 'camera_name', 'camera',
                                         'Name of the camera (calibration files, recordings).')
        self._info_url: str = declare(
            self, 'camera_info_url', '',
            "Calibration YAML: file:///path, package://pkg/path or a path; '' = none.")
        defaults = Settings()
        self._settings = Settings(
            frame_rate=declare(self, 'frame_rate', defaults.frame_rate,
                               'Frames per second; 0 = as fast as the camera can '
                               '(checked against the camera).', float_range=(0.0, 100000.0)),
            exposure_us=declare(self, 'exposure_us', defaults.exposure_us,
                                'Exposure time in microseconds (checked against the camera).',
                                float_range=(0.0, 1e9)),
            gain_db=declare(self, 'gain_db', defaults.gain_db,
                            'Gain in dB (checked against the camera).',
                            float_range=(-100.0, 100.0)),
            pixel_format=declare(self, 'pixel_format', defaults.pixel_format,
                                 'pylon pixel format, e.g. Mono8, Mono12, RGB8, BGR8, BayerRG8 '
                                 '(restarts grabbing).', choices=tuple(ENCODINGS)),
            width=declare(self, 'width', defaults.width,
                          'ROI width; 0 = as wide as offset_x allows (restarts grabbing).',
                          int_range=(0, 1 << 16)),
            height=declare(self, 'height', defaults.height,
                           'ROI height; 0 = as high as offset_y allows (restarts grabbing).',
                           int_range=(0, 1 << 16)),
            offset_x=declare(self, 'offset_x', defaults.offset_x, 'ROI left edge.',
                             int_range=(0, 1 << 16)),
            offset_y=declare(self, 'offset_y', defaults.offset_y, 'ROI top edge.',
                             int_range=(0, 1 << 16)),
        )
        self._grab_timeout_ms: int = declare(
            self, 'grab_timeout_ms', 1000,
            'No frame for this long (at least 2 frame periods plus the exposure) counts as a '
            'failed grab; 10 failures in a row mean the camera is lost and gets reconnected.',
            int_range=(10, 600000))
        self._recording_dir: str = declare(self, 'recording_dir', '~/.ros/recordings',
                                           'Directory of the MCAP files of ~/start_recording.')
        self._side_channel_on: bool = declare(
            self, 'side_channel', True,
            'Also write every frame into a shared-memory ring for consumers on this host '
            '(docs/camera.md, "Shared-memory side channel").', read_only=True)
        self._side_channel_slots: int = declare(
            self, 'side_channel_slots', DEFAULT_SLOTS,
            'Frames the side channel holds: how far behind a reader may fall and still get '
            'every frame (slots minus 2).', read_only=True, int_range=(3, 256))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._image_kwargs = _image_kwargs()
        self._image_pub = self.create_lifecycle_publisher(
            Image, '~/image_raw', qos.SENSOR_DATA, qos_overriding_options=qos.overridable())
        self._info_pub = self.create_lifecycle_publisher(
            CameraInfo, '~/camera_info', qos.SENSOR_DATA,
            qos_overriding_options=qos.overridable())
        self.create_service(Trigger, '~/start_recording', self._start_recording)
        self.create_service(Trigger, '~/stop_recording', self._stop_recording)
        if self._emulate:
            self.create_service(Trigger, '~/emulator/fail_buffers', self._emulate_failed_buffers)
            self.create_service(Trigger, '~/emulator/unplug', self._emulate_removal)

        self._calibration = calibration.Calibration()
        self._camera: BaslerCamera | None = None
        self._recorder = Recorder(serialize_message)
        self._side_channel: FrameWriter | None = None
        self._timestamps = TimestampMapper()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._state = 'unconfigured'
        # This activation's grabbing (the last one's while inactive, for its figures).
        self._grabber: Grabber | None = None
        self.counters = GrabCounters()
        self.frames_published = 0  # written by the grab thread only

    # Lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._calibration = self._load_calibration(self._info_url)
            camera = BaslerCamera(self._serial, self._emulate)
            camera.open(self._settings)
        except CameraError as error:
            self.get_logger().error(f'configure: {error}')
            return TransitionCallbackReturn.FAILURE
        except Exception as error:  # noqa: BLE001 one line with the reason, stay unconfigured
            self.get_logger().error(f'configure: unexpected {type(error).__name__}: {error}')
            return TransitionCallbackReturn.FAILURE
        self._camera = camera
        self._timestamps = TimestampMapper(tick_ns=camera.tick_ns)
        self._state = 'connected'
        self.get_logger().info(f'opened {camera.model} {camera.serial}: {camera.readback}')
        if self._side_channel_on and self._side_channel is None:
            self._side_channel = self._open_side_channel(camera.readback)
        return TransitionCallbackReturn.SUCCESS

    def _open_side_channel(self, readback: dict[str, Any]) -> FrameWriter | None:
        """Open this camera's side channel (taking over a killed predecessor's file).

        Slots sized for the frames the camera is set up for; a larger ROI later grows them.
        """
        path = channel_path(self.context.get_domain_id(), self.get_fully_qualified_name())
        _, bytes_per_pixel = ENCODINGS.get(str(readback.get('pixel_format')), ('', 1))
        frame_bytes = int(readback.get('width') or 0) * int(readback.get('height') or 0) \
            * bytes_per_pixel
        try:
            writer = FrameWriter(path, self._side_channel_slots, frame_bytes)
        except (ChannelBusy, OSError) as error:
            self.get_logger().error(f'no shared-memory side channel: {error}')
            return None
        self.get_logger().info(f'shared-memory side channel {path} (generation '
                               f'{writer.generation})')
        return writer

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        camera = self._camera
        try:
            assert camera is not None
            if not camera.is_open:
                camera.open(self._settings)
            camera.start()
        except (AssertionError, CameraError) as error:
            self.get_logger().error(f'activate: cannot start grabbing: {error}')
            return TransitionCallbackReturn.FAILURE
        self._state = 'grabbing'
        self._grabber = Grabber(camera, self.counters, self, self._frame_timeout_s,
                                first_retry_s=self.heartbeat.period_s)
        self.heartbeat.reset()
        self._pace_publishing()
        return self.activate_loop(state, self._grab_loop, 'grab')

    def _pace_publishing(self) -> None:
        """Declare the loop's message rate: an image and its camera_info per frame.

        The frame rate is the camera's resulting one, else the one asked for, else 30 fps.
        """
        readback = self._camera.readback if self._camera is not None else {}
        rate = next((float(r) for r in (readback.get('resulting_frame_rate'),
                                         self._settings.frame_rate) if r), 30.0)
        self.pace_publishing(2.0 * rate)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_grab_thread()
        self.flush_publishing()
        if self._camera is not None:
            self._camera.stop()
        self._state = 'connected' if self._camera and self._camera.is_open else 'lost'
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.release_hardware()
        self._camera = None
        self._state = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def release_hardware(self) -> None:
        self._stop_grab_thread()
        self._finish_recording()
        if self._camera is not None:
            self._camera.close()
        side_channel, self._side_channel = self._side_channel, None
        if side_channel is not None:
            side_channel.close()

    def _stop_grab_thread(self) -> None:
        self.stop_loop()
        if self._grabber is not None:
            self._grabber.join()
        self._run_requests()  # anything that arrived while it was stopping

    # The grab loop

    def _grab_loop(self) -> None:
        grabber = self._grabber
        assert grabber is not None
        while not self.loop_stop.is_set() and self.context.ok():
            self._run_requests()
            if grabber.lost:
                self._beat(ERROR, f'camera lost ({grabber.lost_reason}); reconnecting')
            frame = grabber.step(WAKE_MS, self.loop_stop)
            if frame is not None:
                try:
                    self._publish(frame)
                except RCLError as error:  # shutting down: the context went away under us
                    if self.context.ok():
                        raise
                    self.get_logger().debug(f'publish during shutdown: {error}')
                    break
            if grabber.lost:
                continue  # its ERROR beat goes out first thing in the next round
            if grabber.failures:
                self._beat(WARN, f'{grabber.failures} failed grabs in a row')
            else:
                self._beat(OK, 'grabbing')

    def _beat(self, level: int, message: str) -> None:
        counters = self.counters
        self.heartbeat.beat(self.frames_published, counters.failed_grabs + counters.camera_skipped,
                            level, message, self._camera.serial if self._camera else '')

    def _frame_timeout_s(self) -> float:
        settings = self._settings
        timeout_s = self._grab_timeout_ms / 1000
        if settings.frame_rate > 0:
            timeout_s = max(timeout_s, 2.0 / settings.frame_rate + settings.exposure_us / 1e6)
        return timeout_s

    # What the grabber reports (GrabEvents)

    def grab_failed(self, error: CameraError) -> None:
        self.get_logger().warning(str(error), throttle_duration_sec=1.0)

    def lost(self, camera: BaslerCamera, reason: str) -> None:
        self.get_logger().error(f'camera {camera.serial} lost: {reason}; reconnecting')
        self._state = 'lost'
        self.heartbeat.reset()  # the next beat (ERROR, with the reason) goes out at once

    def reconnected(self, camera: BaslerCamera) -> None:
        self._timestamps = TimestampMapper(tick_ns=camera.tick_ns)
        self._state = 'grabbing'
        self.get_logger().info(f'camera {camera.serial} reconnected; settings re-applied')

    def _publish(self, frame: Frame) -> None:
        stamp_ns = self._timestamps.map(frame.ticks, frame.host_ns)
        stamp = to_time(stamp_ns)
        image = Image(**self._image_kwargs)
        image.header.stamp = stamp
        image.header.frame_id = self._frame_id
        image.height = frame.height
        image.width = frame.width
        image.encoding = frame.encoding
        image.is_bigendian = 0
        image.step = frame.step
        image.data = frame.data  # adopted, not copied
        info = self._camera_info(frame)
        info.header.stamp = stamp
        info.header.frame_id = self._frame_id
        if self._side_channel is not None:
            self._write_side_channel(frame, stamp_ns)
        # Serializing a frame is most of the loop's cost (a 4096x4096 one: ~10 ms); with no
        # DDS subscriber (e.g. the bridge reads the side channel) nobody would get it anyway.
        if self._image_pub.get_subscription_count():
            self.loop_publisher.submit(self._image_pub, image)
        self.loop_publisher.submit(self._info_pub, info)
        self.frames_published += 1
        if self._recorder.recording:
            self._recorder.submit(stamp_ns, (
                Record(self._image_pub.topic_name, IMAGE_TYPE, image),
                Record(self._info_pub.topic_name, CAMERA_INFO_TYPE, info)))

    def _write_side_channel(self, frame: Frame, stamp_ns: int) -> None:
        side_channel = self._side_channel
        assert side_channel is not None and frame.data is not None  # a grabbed frame
        try:
            side_channel.write(frame.data, stamp_ns, frame.width, frame.height, frame.step,
                               frame.encoding)
        except OSError as error:  # no room in /dev/shm for larger slots: DDS goes on alone
            self.get_logger().error(f'shared-memory side channel closed: {error}')
            self._side_channel = None
            side_channel.close()

    def _camera_info(self, frame: Frame) -> CameraInfo:
        cal = self._calibration
        info = CameraInfo()
        info.width = frame.width
        info.height = frame.height
        info.distortion_model = cal.distortion_model
        info.d = cal.d
        info.k = cal.k
        info.r = cal.r
        info.p = cal.p
        if cal.width and (cal.width, cal.height) != (frame.width, frame.height):
            # A full-sensor calibration used with an ROI: say where the ROI is.
            info.width, info.height = cal.width, cal.height
            info.roi.x_offset = self._settings.offset_x
            info.roi.y_offset = self._settings.offset_y
            info.roi.width = frame.width
            info.roi.height = frame.height
            info.roi.do_rectify = True
        return info

    # Work handed to the grab thread

    def _on_camera(self, work: Callable[[], T]) -> T:
        """Run `work()` where the camera may be touched: on the grab thread if it runs."""
        thread = self.loop_thread
        if thread is None or not thread.is_alive():
            return work()
        future: Future[T] = Future()
        self._requests.put((work, future))
        return future.result(timeout=REQUEST_TIMEOUT_S)

    def _run_requests(self) -> None:
        while True:
            try:
                work, future = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(work())
            except Exception as error:  # noqa: BLE001 handed back to the caller
                future.set_exception(error)

    # Parameters

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        values = {p.name: p.value for p in parameters}
        changes = {k: v for k, v in values.items() if k in Settings.field_names()}
        new_calibration = None
        if 'camera_info_url' in values:
            try:
                new_calibration = self._load_calibration(values['camera_info_url'])
            except calibration.CalibrationError as error:
                return refused(str(error))
        if changes:
            desired = replace(self._settings, **changes)
            reason = self._apply_settings(desired)
            if reason:
                return refused(reason)
            self._settings = desired
            if self._state == 'grabbing':
                self._pace_publishing()
        if new_calibration is not None:
            self._calibration = new_calibration
            self._info_url = values['camera_info_url']
        self._frame_id = values.get('frame_id', self._frame_id)
        self._camera_name = values.get('camera_name', self._camera_name)
        self._grab_timeout_ms = values.get('grab_timeout_ms', self._grab_timeout_ms)
        self._recording_dir = values.get('recording_dir', self._recording_dir)
        return accepted()

    def _apply_settings(self, desired: Settings) -> str | None:
        camera = self._camera
        if camera is None:
            return None  # not configured: applied (and checked) at configure
        if self._state == 'lost' or not camera.is_open:
            return 'the camera is disconnected; try again once it is back'
        try:
            return self._on_camera(lambda: camera.apply(desired))
        except TimeoutError:
            return 'the grab thread did not answer in time'

    def _load_calibration(self, url: str) -> calibration.Calibration:
        cal = calibration.load(url)
        if cal.camera_name and cal.camera_name != self._camera_name:
            self.get_logger().warning(
                f'{url} is for camera {cal.camera_name!r}, this is {self._camera_name!r}')
        return cal

    # Services

    def _start_recording(self, request: Trigger.Request,
                         response: Trigger.Response) -> Trigger.Response:
        try:
            path = self._recorder.start(self._recording_dir, prefix=self._camera_name)
        except (RuntimeError, OSError) as error:
            response.success, response.message = False, str(error)
            return response
        self.get_logger().info(f'recording to {path}')
        response.success, response.message = True, str(path)
        return response

    def _stop_recording(self, request: Trigger.Request,
                        response: Trigger.Response) -> Trigger.Response:
        summary = self._finish_recording()
        if summary is None:
            response.success, response.message = False, 'not recording'
            return response
        response.success = not self._recorder.error
        response.message = (f'{summary.path}: {summary.frames} frames, '
                            f'{summary.dropped} dropped' + (f'; {self._recorder.error}'
                                                            if self._recorder.error else ''))
        return response

    def _finish_recording(self) -> Summary | None:
        summary = self._recorder.stop()
        if summary is not None:
            self.get_logger().info(
                f'recorded {summary.frames} frames to {summary.path} ({summary.dropped} dropped)')
        return summary

    def _emulate_failed_buffers(self, request: Trigger.Request,
                                response: Trigger.Response) -> Trigger.Response:
        return self._fault(response, lambda camera: camera.emulate_failed_buffers(
            FAILED_BUFFERS_PER_REQUEST), f'the next {FAILED_BUFFERS_PER_REQUEST} grabs fail')

    def _emulate_removal(self, request: Trigger.Request,
                         response: Trigger.Response) -> Trigger.Response:
        return self._fault(response, lambda camera: camera.emulate_removal(),
                           'removal event fired')

    def _fault(self, response: Trigger.Response, inject: Callable[[BaslerCamera], object],
               message: str) -> Trigger.Response:
        camera = self._camera
        if camera is None or self._state == 'lost' or not camera.is_open:
            response.success, response.message = False, 'the camera is not open'
            return response
        try:
            self._on_camera(lambda: inject(camera))
        except (CameraError, TimeoutError) as error:
            response.success, response.message = False, str(error)
            return response
        response.success, response.message = True, message
        return response

    # Diagnostics

    def diagnostic_status(self) -> DiagnosticStatus:
        camera, grabber, counters = self._camera, self._grabber, self.counters
        level = ERROR if self._state == 'lost' else OK
        lost_reason = grabber.lost_reason if grabber else ''
        message = (f'camera lost ({lost_reason}); reconnecting'
                   if self._state == 'lost' else self._state)
        values: dict[str, Any] = {
            'state': self._state,
            'serial_number': camera.serial if camera else self._serial,
            'model': camera.model if camera else '',
            'frames_grabbed': counters.frames_grabbed,
            'frames_published': self.frames_published,
            'queue_dropped': self.loop_publisher.dropped,
            'queue_depth': self.loop_publisher.depth,
            'publish_failed': self.loop_publisher.failed,
            'failed_grabs': counters.failed_grabs,
            'grab_timeouts': counters.grab_timeouts,
            'camera_skipped': counters.camera_skipped,
            'reconnects': counters.reconnects,
            'last_block_id': grabber.last_block_id if grabber else 0,
            'rate_hz': self.heartbeat.rate_hz,
            'timestamp_source': self._timestamps.source,
            'recording': self._recorder.recording,
            'recording_path': str(self._recorder.path or ''),
            'recorded_frames': self._recorder.frames,
            'recording_dropped': self._recorder.dropped,
            'side_channel': str(self._side_channel.path) if self._side_channel else '',
            'side_channel_generation': (self._side_channel.generation
                                        if self._side_channel else 0),
        }
        if camera is not None:
            values.update({f'camera_{k}': v for k, v in camera.readback.items()})
        return make_status(self.get_fully_qualified_name(), level, message,
                           camera.serial if camera else self._serial, values)


def main(args: list[str] | None = None) -> None:
    run_worker(CameraNode, args)


if __name__ == '__main__':
    main()
