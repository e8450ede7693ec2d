"""One image stream per camera: its newest frame, its counters, its latency and its encoder.

The ROS thread only replaces a stream's newest frame (`push`); the stream's task on the event
loop takes it (`take`) and counts the frames it never saw as skipped. Each camera has its own
encoder thread, so encoding a large frame of one camera never holds up another camera's frames.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from sensor_workers.bridge import imaging
from sensor_workers.bridge.latency import LatencyWindow


class ImageStream:
    """The frames of one camera (`device`, from `topic`) on their way to its image clients."""

    def __init__(self, device: str, topic: str, latency_span_s: float) -> None:
        self.device = device
        self.topic = topic
        # Where its frames come from: 'dds' or 'side_channel' (image_sources.py).
        self.source = 'dds'
        # Age of each frame on arrival (receipt time - header stamp).
        self.latency = LatencyWindow(latency_span_s)
        self.frames_in = 0
        self.frames_taken = 0
        self.frames_skipped = 0
        self.bad_frames = 0
        self.encoder: ThreadPoolExecutor | None = None
        self.ready: asyncio.Event | None = None
        self._latest: imaging.Frame | None = None

    def open(self) -> None:
        """Create the loop-side parts (on the event loop)."""
        self.ready = asyncio.Event()
        self.encoder = ThreadPoolExecutor(1, thread_name_prefix=f'encode-{self.device}')

    def close(self) -> None:
        """Stop the encoder thread (blocks until a running encoding ends)."""
        if self.encoder is not None:
            self.encoder.shutdown()
            self.encoder = None

    def push(self, frame: imaging.Frame, age_s: float, now: float) -> None:
        """Replace the newest frame (ROS thread); the caller then wakes the stream's task."""
        self.latency.observe(age_s, now)
        self._latest = frame
        self.frames_in += 1

    def take(self) -> tuple[imaging.Frame, int] | None:
        """Return the newest frame and how many arrived since the last take (None: no new one).

        All but the newest of those were replaced before they could be encoded: they are added
        to `frames_skipped`.
        """
        frame, frames_in = self._latest, self.frames_in
        if frame is None or frames_in == self.frames_taken:
            return None
        new = frames_in - self.frames_taken
        self.frames_skipped += new - 1
        self.frames_taken = frames_in
        return frame, new
