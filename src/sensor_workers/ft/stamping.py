"""Map sensor timestamps to host time: low-jitter stamps that never lie in the future.

Each sample has a sensor time s (unwrapped microseconds) and a host receive time h. The host
time alone jitters with every scheduling delay between the sensor and the reader. The sensor
clock is steady, so the stamp is s + offset, where offset tracks the smallest observed h - s
(the fastest transport), which is the best estimate of the true clock offset plus the
fixed part of the latency. The offset may rise by at most `max_drift` (100 ppm by default:
crystal tolerance) per unit of time, so clock drift is followed in both directions while a late
sample cannot pull the stamps later. A stamp is therefore never after the receive time.
"""


class StampMapper:
    def __init__(self, max_drift: float = 1e-4) -> None:
        self.max_drift = max_drift
        self._offset_ns: int | None = None
        self._last_sensor_ns = 0

    def reset(self) -> None:
        """Forget the offset, e.g. after a reconnect (the sensor clock may have restarted)."""
        self._offset_ns = None

    def stamp(self, sensor_us: int, host_ns: int) -> int:
        """Return the stamp (host ns) of a sample taken at `sensor_us`, received at `host_ns`."""
        sensor_ns = sensor_us * 1000
        observed = host_ns - sensor_ns
        if self._offset_ns is None:
            self._offset_ns = observed
        else:
            allowed = self._offset_ns + int((sensor_ns - self._last_sensor_ns) * self.max_drift)
            self._offset_ns = min(observed, allowed)
        self._last_sensor_ns = sensor_ns
        return sensor_ns + self._offset_ns
