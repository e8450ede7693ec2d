"""The lifecycle manager: supervises one worker process per device (see docs/manager.md)."""
