"""A Basler camera through pypylon, without ROS: open, configure, grab, detect removal, reconnect.

pypylon is imported lazily, so that `use_emulator()` can set `PYLON_CAMEMU` first (the emulator
only exists if the variable is set before the first import) and so that modules importing this
one stay cheap.

All camera access after `start()` belongs to one thread (the node's grab thread); the node routes
parameter changes to that thread instead of touching the camera concurrently.
"""

import array
from dataclasses import dataclass, fields, replace
import logging
import os
import sys
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

EMULATION_ENV = 'PYLON_CAMEMU'
# pylon's device class of its camera emulator. An emulated camera is looked up in that transport
# layer only: enumerating all of them also broadcasts a GigE Vision discovery packet on every
# network interface (UDP port 3956, seen with strace) and waits ~250 ms for answers.
EMULATOR_DEVICE_CLASS = 'BaslerCamEmu'

# pylon pixel format -> (sensor_msgs/image_encodings name, bytes per pixel). Mono10/12 and
# Bayer 10/12 arrive unpacked in 16-bit words (value range 0..1023 / 0..4095).
ENCODINGS: dict[str, tuple[str, int]] = {
    'Mono8': ('mono8', 1),
    'Mono10': ('mono16', 2),
    'Mono12': ('mono16', 2),
    'Mono16': ('mono16', 2),
    'RGB8': ('rgb8', 3),
    'RGB8Packed': ('rgb8', 3),
    'BGR8': ('bgr8', 3),
    'BGR8Packed': ('bgr8', 3),
    'BGRA8Packed': ('bgra8', 4),
    'RGB16Packed': ('rgb16', 6),
}
for _order, _ros in (('RG', 'rggb'), ('BG', 'bggr'), ('GB', 'gbrg'), ('GR', 'grbg')):
    ENCODINGS[f'Bayer{_order}8'] = (f'bayer_{_ros}8', 1)
    for _bits in (10, 12, 16):
        ENCODINGS[f'Bayer{_order}{_bits}'] = (f'bayer_{_ros}16', 2)

# SFNC 2 names (USB3 cameras, ace 2) and their older GigE spellings.
_ALIASES = {'RGB8': 'RGB8Packed', 'BGR8': 'BGR8Packed', 'RGB8Packed': 'RGB8',
            'BGR8Packed': 'BGR8'}
_FRAME_RATE = ('AcquisitionFrameRate', 'AcquisitionFrameRateAbs')
_RESULTING_FRAME_RATE = ('ResultingFrameRate', 'ResultingFrameRateAbs')
_EXPOSURE = ('ExposureTime', 'ExposureTimeAbs')
_GAIN = ('Gain', 'GainAbs')
# Changing these needs the grab stopped (the camera locks them while streaming).
RESTART_FIELDS = frozenset({'pixel_format', 'width', 'height', 'offset_x', 'offset_y'})


class CameraError(RuntimeError):
    """The camera could not be found, opened or configured; the message says why."""


class CameraRemoved(CameraError):
    """The device is gone (unplugged, powered off, or the emulator's removal event)."""


@dataclass(frozen=True)
class Settings:
    """What the user asked for. 0 for width/height means the largest the offsets allow."""

    frame_rate: float = 30.0  # 0 = free run as fast as the camera can
    exposure_us: float = 10000.0
    gain_db: float = 0.0
    pixel_format: str = 'Mono8'
    width: int = 0
    height: int = 0
    offset_x: int = 0
    offset_y: int = 0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass
class Frame:
    """One grab result, already released back to the camera."""

    data: array.array | None  # the pixels: one copy out of the SDK buffer; None if failed
    width: int
    height: int
    step: int
    encoding: str
    ticks: int  # camera timestamp (0 when the camera gives none, e.g. the emulator)
    block_id: int  # the camera's frame counter (GigE/USB3 block id; gaps are frames lost)
    host_ns: int  # time.time_ns() when the result was retrieved
    error: str = ''  # non-empty for a failed (incomplete) buffer


def use_emulator(count: int = 1) -> None:
    """Make pypylon provide `count` emulated cameras (if PYLON_CAMEMU is not already set)."""
    if EMULATION_ENV in os.environ:
        return
    if 'pypylon' in sys.modules:
        log.warning('pypylon was imported before %s was set: no emulated camera will appear',
                    EMULATION_ENV)
    os.environ[EMULATION_ENV] = str(count)


def _pylon() -> tuple[Any, Any]:
    """Return pypylon's `pylon` and `genicam` modules, imported on first use (slow)."""
    from pypylon import genicam, pylon

    return pylon, genicam


class BaslerCamera:
    """One camera: open by serial (or the first found), apply settings, grab frames."""

    def __init__(self, serial_number: str = '', emulate: bool = False,
                 buffers: int = 16) -> None:
        if emulate:
            use_emulator()
        self.emulate = emulate
        self.serial = serial_number
        self.model = ''
        self.buffers = buffers
        self.settings = Settings()
        self.readback: dict[str, Any] = {}
        self.tick_ns = 1.0
        self._camera = None
        self._grabbing = False
        self._removed = threading.Event()
        self._handler: object | None = None

    # Connection

    @property
    def is_open(self) -> bool:
        return self._camera is not None

    @property
    def is_grabbing(self) -> bool:
        return self._grabbing

    def open(self, settings: Settings | None = None) -> None:
        """Find and open the camera, then apply `settings` (all of them); raise CameraError."""
        pylon, genicam = _pylon()
        self.close()
        factory = pylon.TlFactory.GetInstance()
        if self.emulate:
            emulator = pylon.DeviceInfo()
            emulator.SetDeviceClass(EMULATOR_DEVICE_CLASS)
            devices = factory.EnumerateDevices([emulator])
        else:
            devices = factory.EnumerateDevices()
        if not devices:
            raise CameraError('no camera found')
        wanted = self.serial
        chosen = None
        for device in devices:
            if not wanted or device.GetSerialNumber() == wanted:
                chosen = device
                break
        if chosen is None:
            found = ', '.join(d.GetSerialNumber() for d in devices)
            raise CameraError(f'camera {wanted} not found (found: {found})')
        try:
            camera = pylon.InstantCamera(factory.CreateDevice(chosen))
            camera.Open()
        except genicam.GenericException as error:
            raise CameraError(f'cannot open camera {chosen.GetSerialNumber()}: '
                              f'{_first_line(error)}') from error
        self._camera = camera
        self.serial = chosen.GetSerialNumber()
        self.model = chosen.GetModelName()
        self._removed.clear()
        self._register_removal_handler(camera)
        camera.MaxNumBuffer.Value = self.buffers
        if _available(camera, 'GevTimestampTickFrequency'):
            self.tick_ns = 1e9 / camera.GevTimestampTickFrequency.Value
        try:
            self._apply(settings or self.settings, force=True)
        except CameraError:
            self.close()
            raise
        log.debug('opened %s %s', self.model, self.serial)

    def close(self) -> None:
        """Stop grabbing, close and destroy the device; safe to call at any time."""
        camera, self._camera = self._camera, None
        self._grabbing = False
        if camera is None:
            return
        _, genicam = _pylon()
        for step in (camera.StopGrabbing, camera.Close, camera.DestroyDevice):
            try:
                step()
            except genicam.GenericException as error:
                log.debug('closing %s: %s', self.serial, _first_line(error))

    @property
    def removed(self) -> bool:
        """True once the device is gone: removal event, or pylon's removal flag."""
        if self._removed.is_set():
            return True
        camera = self._camera
        if camera is not None and camera.IsCameraDeviceRemoved():
            self._removed.set()
        return self._removed.is_set()

    def _register_removal_handler(self, camera: Any) -> None:
        pylon, _ = _pylon()
        removed = self._removed

        class RemovalHandler(pylon.ConfigurationEventHandler):  # type: ignore[name-defined]
            def OnCameraDeviceRemoved(self, camera: Any) -> None:  # noqa: N802 pylon's name
                removed.set()

        handler = RemovalHandler()
        camera.RegisterConfiguration(handler, pylon.RegistrationMode_Append, pylon.Cleanup_None)
        self._handler = handler  # Cleanup_None: the camera does not own it, we keep it alive

    # Grabbing

    def start(self) -> None:
        """Start free-run grabbing into the camera's buffer queue (oldest frame first)."""
        pylon, genicam = _pylon()
        camera = self._require_open()
        try:
            camera.StartGrabbing(pylon.GrabStrategy_OneByOne)
        except genicam.GenericException as error:
            raise CameraError(f'cannot start grabbing: {_first_line(error)}') from error
        self._grabbing = True

    def stop(self) -> None:
        camera = self._camera
        self._grabbing = False
        if camera is None:
            return
        _, genicam = _pylon()
        try:
            camera.StopGrabbing()
        except genicam.GenericException as error:
            log.debug('stop grabbing: %s', _first_line(error))

    def grab(self, timeout_ms: int) -> Frame | None:
        """Wait up to `timeout_ms` for the next frame; None on timeout.

        The pixels are copied once, from the SDK buffer into an `array.array` that a ROS message
        can adopt without another copy; the buffer goes back to the camera before returning.
        Raises CameraRemoved when the device is gone.
        """
        pylon, genicam = _pylon()
        camera = self._require_open()
        if self.removed:
            raise CameraRemoved(f'camera {self.serial} was removed')
        try:
            result = camera.RetrieveResult(timeout_ms, pylon.TimeoutHandling_Return)
        except genicam.GenericException as error:
            if self.removed:
                raise CameraRemoved(f'camera {self.serial} was removed') from error
            raise CameraError(f'grab failed: {_first_line(error)}') from error
        host_ns = time.time_ns()
        if not result.IsValid():
            return None
        with result:
            if not result.GrabSucceeded():
                return Frame(None, 0, 0, 0, '', 0, result.BlockID, host_ns,
                             result.ErrorDescription or f'error 0x{result.ErrorCode:x}')
            height = result.GetHeight()
            width = result.GetWidth()
            data = array.array('B')
            with result.GetArrayZeroCopy() as pixels:
                if not pixels.flags.c_contiguous:  # row padding: rare, costs a second copy
                    pixels = pixels.copy()
                data.frombytes(memoryview(pixels).cast('B'))
            return Frame(
                data, width, height, len(data) // height if height else 0,
                ENCODINGS[self.settings.pixel_format][0], result.TimeStamp,
                result.BlockID, host_ns)

    # Settings

    def apply(self, settings: Settings) -> str | None:
        """Change to `settings`; return None, or the reason for refusing (camera unchanged).

        Only the fields that differ from the current settings are checked and written. ROI and
        pixel format changes stop and restart grabbing when it is running.
        """
        try:
            self._apply(settings, force=False)
        except CameraError as error:
            return str(error)
        return None

    def _apply(self, settings: Settings, force: bool) -> None:
        self._require_open()
        _, genicam = _pylon()
        old = self.settings
        settings = replace(settings, pixel_format=self._pixel_format_name(settings.pixel_format))
        changed = {name for name in Settings.field_names()
                   if force or getattr(settings, name) != getattr(old, name)}
        if not changed:
            return
        restart = self._grabbing and bool(changed & RESTART_FIELDS)
        if restart:
            self.stop()
        try:
            self._check(settings, changed)
            try:
                self._write(settings, changed)
            except (genicam.GenericException, CameraError) as error:
                if not force:
                    self._restore(old, changed)
                raise CameraError(f'the camera refused: {_first_line(error)}') from error
            self.settings = settings
        finally:
            self._read_back()
            if restart:
                self.start()

    def _restore(self, old: Settings, changed: set[str]) -> None:
        _, genicam = _pylon()
        try:
            self._write(old, changed)
        except (genicam.GenericException, CameraError) as error:
            log.warning('could not restore the previous settings: %s', _first_line(error))

    def _pixel_format_name(self, name: str) -> str:
        camera = self._require_open()
        symbolics = camera.PixelFormat.Symbolics
        if name not in symbolics and _ALIASES.get(name) in symbolics:
            return _ALIASES[name]
        return name

    def _check(self, settings: Settings, changed: set[str]) -> None:
        """Raise CameraError with the reason if the camera cannot take `settings`."""
        camera = self._require_open()
        if 'pixel_format' in changed:
            symbolics = camera.PixelFormat.Symbolics
            if settings.pixel_format not in symbolics:
                raise CameraError(f'pixel_format {settings.pixel_format} is not supported by '
                                  f'this camera (it has: {", ".join(symbolics)})')
            if settings.pixel_format not in ENCODINGS:
                supported = ', '.join(s for s in symbolics if s in ENCODINGS)
                raise CameraError(f'pixel_format {settings.pixel_format} has no ROS encoding '
                                  f'(use one of: {supported})')
        if 'frame_rate' in changed and settings.frame_rate > 0:
            _check_range(self._feature(_FRAME_RATE), 'frame_rate', settings.frame_rate)
        if 'exposure_us' in changed:
            _check_range(self._feature(_EXPOSURE), 'exposure_us', settings.exposure_us)
        if 'gain_db' in changed:
            _check_range(self._feature(_GAIN), 'gain_db', settings.gain_db)
        if changed & {'width', 'offset_x'}:
            _check_axis(camera.Width, camera.OffsetX, 'width', 'offset_x',
                        settings.width, settings.offset_x)
        if changed & {'height', 'offset_y'}:
            _check_axis(camera.Height, camera.OffsetY, 'height', 'offset_y',
                        settings.height, settings.offset_y)

    def _write(self, settings: Settings, changed: set[str]) -> None:
        camera = self._require_open()
        if 'pixel_format' in changed:
            camera.PixelFormat.Value = settings.pixel_format
        if changed & {'width', 'offset_x'}:
            _write_axis(camera.Width, camera.OffsetX, settings.width, settings.offset_x)
        if changed & {'height', 'offset_y'}:
            _write_axis(camera.Height, camera.OffsetY, settings.height, settings.offset_y)
        if 'exposure_us' in changed:
            _turn_off(camera, 'ExposureAuto')
            self._feature(_EXPOSURE).Value = settings.exposure_us
        if 'gain_db' in changed:
            _turn_off(camera, 'GainAuto')
            self._feature(_GAIN).Value = settings.gain_db
        if 'frame_rate' in changed:
            enabled = settings.frame_rate > 0
            if _available(camera, 'AcquisitionFrameRateEnable'):
                camera.AcquisitionFrameRateEnable.Value = enabled
            if enabled:
                self._feature(_FRAME_RATE).Value = settings.frame_rate

    def _read_back(self) -> None:
        """Read what the camera actually has (for diagnostics)."""
        camera = self._camera
        if camera is None or self.removed:
            return
        values: dict[str, Any] = {}
        try:
            values['pixel_format'] = camera.PixelFormat.Value
            for name in ('Width', 'Height', 'OffsetX', 'OffsetY'):
                values[name] = getattr(camera, name).Value
            for key, names in (('frame_rate', _FRAME_RATE), ('exposure_us', _EXPOSURE),
                               ('gain_db', _GAIN), ('resulting_frame_rate',
                                                    _RESULTING_FRAME_RATE)):
                feature = self._feature(names, required=False)
                if feature is not None:
                    values[key] = feature.Value
        except Exception as error:  # noqa: BLE001 diagnostics only; never fail a change for it
            log.debug('read back: %s', error)
        self.readback = {
            'pixel_format': values.get('pixel_format'),
            'width': values.get('Width'),
            'height': values.get('Height'),
            'offset_x': values.get('OffsetX'),
            'offset_y': values.get('OffsetY'),
            'frame_rate': values.get('frame_rate'),
            'resulting_frame_rate': values.get('resulting_frame_rate'),
            'exposure_us': values.get('exposure_us'),
            'gain_db': values.get('gain_db'),
        }

    # Emulator fault injection (pypylon's camera emulator only)

    def emulate_failed_buffers(self, count: int) -> None:
        """Make the next `count` grabs fail as 'incompletely grabbed'."""
        camera = self._require_emulator()
        camera.ForceFailedBufferCount.Value = count
        camera.ForceFailedBuffer.Execute()

    def emulate_removal(self) -> None:
        """Fire the emulator's removal event, as if the cable were pulled."""
        camera = self._require_emulator()
        fire = camera.FirePnPCallback
        camera.FirePnPCallbackValue.Value = 1
        fire.Execute()

    # Helpers

    def _require_open(self) -> Any:
        if self._camera is None:
            raise CameraError('camera is not open')
        return self._camera

    def _require_emulator(self) -> Any:
        camera = self._require_open()
        if not _available(camera, 'ForceFailedBuffer'):
            raise CameraError('fault injection needs the pylon camera emulator')
        return camera

    def _feature(self, names: tuple[str, ...], required: bool = True) -> Any:
        camera = self._require_open()
        for name in names:
            if _available(camera, name):
                return getattr(camera, name)
        if required:
            raise CameraError(f'this camera has none of {", ".join(names)}')
        return None


def _available(camera: Any, name: str) -> bool:
    _, genicam = _pylon()
    try:
        return genicam.IsAvailable(getattr(camera, name))
    except (genicam.GenericException, AttributeError):
        return False


def _turn_off(camera: Any, name: str) -> None:
    _, genicam = _pylon()
    if _available(camera, name) and genicam.IsWritable(getattr(camera, name)):
        getattr(camera, name).Value = 'Off'


def _check_range(feature: Any, name: str, value: float) -> None:
    low, high = feature.Min, feature.Max
    if not low <= value <= high:
        raise CameraError(f'{name} {value:g} is outside the camera range [{low:g}, {high:g}]')


def _check_axis(size: Any, offset: Any, size_name: str, offset_name: str, value: int,
                start: int) -> None:
    """Check one ROI axis against the sensor: increments, minimum, and offset + size <= max."""
    sensor = size.Max + offset.Value  # the size maximum shrinks by the current offset
    if start < 0 or start > sensor - size.Min:
        raise CameraError(f'{offset_name} {start} is outside the camera range '
                          f'[0, {sensor - size.Min}]')
    if start % offset.Inc:
        raise CameraError(f'{offset_name} {start} is not a multiple of the camera increment '
                          f'{offset.Inc}')
    if value == 0:
        return
    if not size.Min <= value <= sensor - start:
        raise CameraError(f'{size_name} {value} is outside the camera range '
                          f'[{size.Min}, {sensor - start}] (sensor {sensor}, {offset_name} '
                          f'{start})')
    if (value - size.Min) % size.Inc:
        raise CameraError(f'{size_name} {value} is not a multiple of the camera increment '
                          f'{size.Inc}')


def _write_axis(size: Any, offset: Any, value: int, start: int) -> None:
    """Write an ROI axis in an order the camera accepts from any previous ROI."""
    offset.Value = 0
    sensor = size.Max
    size.Value = value or (sensor - start) // size.Inc * size.Inc
    offset.Value = start


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
