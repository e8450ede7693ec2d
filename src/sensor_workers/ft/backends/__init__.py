"""Sensor backends: `builtin` (our Gen0 reader) and `bota_driver` (Bota's official binding)."""

from sensor_workers.ft.backends.base import Backend, BackendError

BACKENDS = ('builtin', 'bota_driver')


def create_backend(name: str, port: str, baudrate: int, sinc_length: int) -> Backend:
    """Return an unopened backend by name."""
    if name == 'builtin':
        from sensor_workers.ft.backends.builtin import BuiltinBackend

        return BuiltinBackend(port, baudrate, sinc_length)
    if name == 'bota_driver':
        from sensor_workers.ft.backends.bota import BotaDriverBackend

        return BotaDriverBackend(port, baudrate, sinc_length)
    raise BackendError(f'unknown backend {name!r}; one of {", ".join(BACKENDS)}')


__all__ = ['BACKENDS', 'Backend', 'BackendError', 'create_backend']
