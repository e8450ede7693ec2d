"""What a process's Fast DDS threads say about its transports (read from /proc)."""

from pathlib import Path


def shm_listener_wakeups(pid: int) -> dict[str, int]:
    """Voluntary context switches of each shared-memory listener thread of `pid`, by name.

    Fast DDS names the thread that listens on shared-memory port N `dds.shm.N`; a process
    without one has no port that another process writes into.
    """
    wakeups = {}
    for task in Path(f'/proc/{pid}/task').iterdir():
        try:
            name = (task / 'comm').read_text().strip()
            if name.startswith('dds.shm.') and name != 'dds.shm.wdog':
                status = (task / 'status').read_text()
                wakeups[name] = int(status.split('voluntary_ctxt_switches:')[1].split()[0])
        except OSError:  # the thread ended meanwhile
            continue
    return wakeups
