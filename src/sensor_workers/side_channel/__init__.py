"""A same-host shared-memory side channel for camera frames, beside `~/image_raw`.

See docs/camera.md, "Shared-memory side channel": layout.py (the file), writer.py (the camera),
reader.py (consumers), cleanup.py (files of dead writers).
"""
