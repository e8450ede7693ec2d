"""Bota's official driver (`bota-driver`, interface Bota_Binary_gen0), in the calling process.

The bota_reader process runs this; the worker talks to that process (bota.py).

Known faults of the driver (../FACTS.md) and what this wrapper does about them:
- the first read after `activate()` repeats a frame, and a lost port makes the reader return its
  last frame again and again: frames are deduplicated by timestamp;
- a lost port is otherwise silent: no new frame for `STALE_AFTER_S` counts as lost, and the
  driver is recreated;
- after a stall the driver raises once, returns a zero frame and stays in ERROR_PROCESSING: the
  driver is recreated (its constructor always waits 3 s);
- bad CRC and garbage are dropped silently: the caller sees them only as timestamp gaps;
- it hands over the newest frame only: when frames arrive faster than they are read, it skips
  the older ones. Each skip is counted by its cause: `skipped_reader_late` when this process
  came back to read later than one sample period after the previous frame (the loop's own
  fault), `skipped_in_bursts` when the reader waited in time and the frames arrived together
  (the kernel delivered the serial data late, e.g. its tty worker waited behind other load).
The constructor and `read_frame_blocking` hold the GIL for their whole duration (nanobind), so
recreating the driver stops every thread of this process for about 3.5 s, and any other Python
thread gets the GIL only between two reads: hence a process of its own, with one thread.
"""

import logging
import time

from sensor_workers.ft.backends.base import BackendError
from sensor_workers.ft.protocol import Frame, sample_period_s

log = logging.getLogger(__name__)

SINC_RANGE = (64, 2048)  # what the driver accepts for standard (non-MN1S) sensors
STALE_AFTER_S = 0.5
RECREATE_INTERVAL_S = 1.0
# The driver requires both names; it reads the real ones from the sensor (`p?`) and only warns
# when they differ from these placeholders.
PRODUCT_NAME = 'BFT-GEN0-SER'
SERIAL_NUMBER = 'SN0000000'
TIMESTAMP_MODULUS = 1 << 32  # the sensor's microsecond timestamp is a wrapping uint32


COUNTER_NAMES = ('frames', 'duplicates', 'stale_events', 'driver_errors', 'recreations',
                 'skipped_reader_late', 'skipped_in_bursts')


def check_sinc_length(sinc_length: int) -> None:
    """Raise BackendError for a sinc length the driver refuses."""
    if not SINC_RANGE[0] <= sinc_length <= SINC_RANGE[1]:
        raise BackendError(f'the bota_driver backend accepts sinc_length '
                           f'{SINC_RANGE[0]}-{SINC_RANGE[1]} only (got {sinc_length})')


class BotaDriverSession:
    """The driver with our fault handling; the methods follow the `Backend` interface."""

    def __init__(self, port: str, baudrate: int, sinc_length: int) -> None:
        check_sinc_length(sinc_length)
        self.port = port
        self.baudrate = baudrate
        self.sinc_length = sinc_length
        self.error = ''
        self.generation = 0
        self._driver = None
        self._active = False
        self._period_us = sample_period_s(sinc_length) * 1e6
        self._last_timestamp: int | None = None
        self._last_new = 0.0
        self._next_recreate = 0.0
        self.frames = 0
        self.duplicates = 0
        self.stale_events = 0
        self.driver_errors = 0
        self.recreations = 0
        self.skipped_reader_late = 0
        self.skipped_in_bursts = 0

    def _create(self) -> None:
        import bota_driver

        config = bota_driver.BotaDriverConfig()
        config.communication_interface_name = 'Bota_Binary_gen0'
        interface = bota_driver.BotaBinaryCommunicationInterfaceConfig()
        interface.com_port = self.port
        interface.baudrate = self.baudrate
        config.binary_communication_interface_params = interface
        operation = bota_driver.Gen0SensorOperationConfig()
        operation.sinc_length = self.sinc_length
        config.gen0_sensor_operation_params = operation
        config.driver_operation_params = bota_driver.DriverOperationConfig()
        config.product_name = PRODUCT_NAME
        config.serial_number = SERIAL_NUMBER
        try:
            driver = bota_driver.BotaDriver(config)
            if not driver.configure():
                driver.shutdown()
                raise RuntimeError('configure() failed')
        except (RuntimeError, ValueError) as error:
            raise BackendError(f'bota_driver on {self.port}: {error}') from error
        self._driver = driver
        self._last_timestamp = None
        self.generation += 1

    def configure(self) -> None:
        self._create()

    def start(self) -> None:
        if self._driver is None or not self._driver.activate():
            raise BackendError(f'bota_driver on {self.port}: activate() failed')
        self._active = True
        self._last_new = time.monotonic()

    def stop(self) -> None:
        self._active = False
        if self._driver is not None:
            self._driver.deactivate()

    def close(self) -> None:
        self._active = False
        if self._driver is not None:
            try:
                self._driver.shutdown()
            except RuntimeError as error:
                log.warning('bota_driver shutdown: %s', error)
        self._driver = None

    def read(self, timeout: float) -> Frame | None:
        if self._driver is None:
            self._recreate(timeout)
            return None
        called = time.monotonic()
        try:
            raw = self._driver.read_frame_blocking()
        except RuntimeError as error:
            self.driver_errors += 1
            self._drop(f'driver error: {error}')
            return None
        now = time.monotonic()
        if raw.timestamp == self._last_timestamp:
            self.duplicates += 1
            if now - self._last_new > STALE_AFTER_S:
                self.stale_events += 1
                self._drop(f'no new frame for {STALE_AFTER_S} s (port lost?)')
            else:
                time.sleep(min(timeout, 0.001))  # the driver busy-loops on a lost port
            return None
        if str(self._driver.get_driver_state()).endswith('ERROR_PROCESSING'):
            self.driver_errors += 1
            self._drop('driver stuck in ERROR_PROCESSING')
            return None
        if self._last_timestamp is not None:
            self._count_skipped(raw.timestamp - self._last_timestamp, called - self._last_new)
        self._last_timestamp = raw.timestamp
        self._last_new = now
        self.frames += 1
        self.error = ''
        return Frame(raw.status.val, (*raw.force, *raw.torque), raw.timestamp, raw.temperature)

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def _count_skipped(self, step_us: int, reader_late: float) -> None:
        """Count the frames the driver skipped between two frames `step_us` apart, by cause.

        `reader_late` is how long after the previous new frame this read was called.
        """
        elapsed_us = step_us % TIMESTAMP_MODULUS
        skipped = round(elapsed_us / self._period_us) - 1
        if skipped <= 0:
            return
        if reader_late > self._period_us / 1e6:
            self.skipped_reader_late += skipped
        else:
            self.skipped_in_bursts += skipped

    def _drop(self, reason: str) -> None:
        log.warning('%s: %s; recreating the driver', self.port, reason)
        self.error = reason
        self.close()
        self._active = True
        self._next_recreate = time.monotonic()

    def _recreate(self, timeout: float) -> None:
        now = time.monotonic()
        if now < self._next_recreate:
            time.sleep(min(timeout, self._next_recreate - now))
            return
        self._next_recreate = now + RECREATE_INTERVAL_S
        try:
            self._create()
            self.start()
        except BackendError as error:
            self.error = str(error)
            self.close()
            self._active = True
            return
        self.recreations += 1
