"""Two "hosts" on one machine: network namespaces joined by a veth pair (needs root).

Each host has its own loopback and one address on the pair, from a private /24 chosen per run;
nothing else is routed, so traffic stays between the two. IPv6 is off on the pair, so the kernel
sends no neighbour or router solicitations of its own: any multicast frame on the link would be
ours, and `multicast_frames()` counts them. A host may get a private /dev/shm (a tmpfs in its own
mount namespace), so that no shared memory crosses between "hosts" either.
"""

from collections.abc import Iterator, Sequence
import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import shutil
import subprocess

# `ip netns exec` runs the command in a mount namespace of its own, so the tmpfs stays private.
_PRIVATE_SHM = 'mount -t tmpfs -o size=512m,mode=1777 tmpfs /dev/shm && exec "$@"'


@dataclass(frozen=True)
class Host:
    namespace: str
    interface: str
    address: str
    private_shm: bool

    def command(self, argv: Sequence[str]) -> list[str]:
        """Return `argv` run inside this host (its network and, if set, its own /dev/shm)."""
        inside = ['sh', '-c', _PRIVATE_SHM, 'sh', *argv] if self.private_shm else list(argv)
        return ['ip', 'netns', 'exec', self.namespace, *inside]

    def udp_receive_drops(self) -> int:
        """Return the datagrams this host's kernel dropped on open UDP sockets (buffer full)."""
        table = _run(['ip', 'netns', 'exec', self.namespace, 'cat', '/proc/net/udp'])
        return sum(int(line.split()[-1]) for line in table.splitlines()[1:])

    def multicast_frames(self) -> int:
        """Return the multicast frames this host's interface received."""
        statistics = _run(['ip', 'netns', 'exec', self.namespace, 'cat',
                           f'/sys/class/net/{self.interface}/statistics/multicast'])
        return int(statistics.strip())


def unavailable_reason() -> str | None:
    """Return why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return 'network namespaces need root'
    if shutil.which('ip') is None:
        return "iproute2's `ip` is missing"
    if not Path('/proc/self/ns/net').exists():
        return 'this kernel has no network namespaces'
    return None


@contextlib.contextmanager
def two_hosts(tag: str, private_shm: tuple[bool, bool] = (False, True)) -> Iterator[
        tuple[Host, Host]]:
    """Make two hosts for the block; they (and their veth pair) are deleted afterwards.

    `tag` makes the names unique (e.g. the test process's pid); the /24 is derived from it.
    Every process started inside must have ended before the block ends.
    """
    subnet = f'10.{200 + int(tag) % 50}.{int(tag) // 50 % 250}'
    a = Host(f'sw{tag}a', f'sw{tag}a', f'{subnet}.1', private_shm[0])
    b = Host(f'sw{tag}b', f'sw{tag}b', f'{subnet}.2', private_shm[1])
    hosts = (a, b)
    made: list[str] = []
    try:
        for host in hosts:
            _run(['ip', 'netns', 'add', host.namespace])
            made.append(host.namespace)
        _run(['ip', 'link', 'add', a.interface, 'netns', a.namespace, 'type', 'veth',
              'peer', 'name', b.interface, 'netns', b.namespace])
        for host in hosts:
            inside = ['ip', 'netns', 'exec', host.namespace]
            _run([*inside, 'sysctl', '-q', '-w',
                  f'net.ipv6.conf.{host.interface}.disable_ipv6=1'])
            _run([*inside, 'ip', 'addr', 'add', f'{host.address}/24', 'dev', host.interface])
            _run([*inside, 'ip', 'link', 'set', 'lo', 'up'])
            _run([*inside, 'ip', 'link', 'set', host.interface, 'up'])
        yield hosts
    finally:
        for namespace in made:
            subprocess.run(['ip', 'netns', 'del', namespace], check=False,  # noqa: S603,S607
                           capture_output=True)


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, check=False, capture_output=True, text=True)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f'{" ".join(argv)} failed: {done.stderr.strip()}')
    return done.stdout
