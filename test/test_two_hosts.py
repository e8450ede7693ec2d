"""Devices on one host, the bridge on another, with the shipped profile as it is.

Two network namespaces joined by a veth pair stand for the hosts; the bridge's host has a
private /dev/shm, so everything crosses over UDP. Discovery is unicast only:
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and each host's ROS_STATIC_PEERS naming the other.
"""

from collections.abc import Iterator
import json
import os
from pathlib import Path
import signal
import sys

from manager_helpers import write_config
import pytest

from sensor_workers.testing import netns
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(netns.unavailable_reason() is not None,
                       reason=netns.unavailable_reason() or ''),
]

CLIENT = Path(__file__).resolve().parent / 'remote_bridge_client.py'
# The bridge's host has a loopback of its own: any port is free there.
BRIDGE_URL = 'http://127.0.0.1:18080'
SENSOR_HZ = 1000.0
CAMERA_FPS = 30.0


@pytest.fixture
def hosts(procs: ProcessGroup) -> Iterator[tuple[netns.Host, netns.Host]]:
    with netns.two_hosts(str(os.getpid())) as pair:
        try:
            yield pair
        finally:
            procs.stop_all()  # nothing may run inside when the namespaces go


def _client(procs: ProcessGroup, host: netns.Host, name: str, *args: str) -> dict:
    process = procs.start(name, host.command([sys.executable, str(CLIENT), *args]))
    assert process.popen.wait(60) == 0, process.tail()
    return json.loads(process.output().strip().splitlines()[-1])


def test_devices_and_bridge_on_two_hosts(procs, hosts, tmp_path):
    devices_host, bridge_host = hosts
    config = write_config(tmp_path, {'devices': ['camera', 'ft']},
                          {'bridge': {'host': '127.0.0.1', 'port': 18080}})
    cli = [sys.executable, '-m', 'sensor_workers.cli']
    cell = procs.start('cell', devices_host.command(
        [*cli, 'up', '--no-bridge', '--config', str(config)]),
        env={'ROS_STATIC_PEERS': bridge_host.address})
    procs.start('bridge', bridge_host.command([*cli, 'bridge', '--config', str(config)]),
                env={'ROS_STATIC_PEERS': devices_host.address})
    polls = iter(range(10_000))

    def status() -> dict:
        return _client(procs, bridge_host, f'status-{next(polls)}', 'status', BRIDGE_URL)

    def active(not_pid: int | None = None) -> bool:
        try:
            devices = status()['devices']
        except (AssertionError, json.JSONDecodeError):  # the bridge is not listening yet
            return False
        return all(devices[name]['source'] == 'manager' and devices[name]['state'] == 'active'
                   and devices[name]['rate_hz'] > 0 for name in ('camera', 'ft')) and \
            devices['ft']['pid'] != not_pid

    # The manager's verdict and the heartbeats crossed to the bridge's host.
    wait_until(active, 90, 'both devices active, as the bridge on the other host sees them',
               period=0.5)
    figures = _client(procs, bridge_host, 'stream', 'stream', BRIDGE_URL, '10')
    print(f'across hosts, 10 s: {figures}')
    wrench, image = figures['wrench'], figures['image']
    seen = status()
    where = {'kernel_udp_drops': bridge_host.udp_receive_drops(),
             'bridge_backlog_dropped': seen['bridge']['wrench_backlog_dropped'],
             'worker_dropped': seen['devices']['ft']['dropped']}
    assert wrench['lost'] == 0 and wrench['dropped'] == 0, (wrench, where)
    assert wrench['samples'] >= 0.95 * SENSOR_HZ * wrench['span_s'] and wrench['span_s'] > 9
    assert image['fps'] >= 0.9 * CAMERA_FPS, image
    # The camera's side channel is on the other host's /dev/shm: the bridge takes DDS.
    assert seen['bridge']['image_sources'] == {'camera': 'dds'}

    # A kill -9 on the devices' host heals, and the bridge's host sees it heal.
    pid = status()['devices']['ft']['pid']
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: active(not_pid=pid), 30, 'ft active again with a new pid', period=0.5)
    restarts = status()['devices']['ft']['restarts']
    assert restarts >= 1
    after = _client(procs, bridge_host, 'stream-after', 'stream', BRIDGE_URL, '3')['wrench']
    assert after['lost'] == 0 and after['samples'] >= 0.95 * SENSOR_HZ * after['span_s'], after
    assert '[manager]: ft: active' in cell.output()

    # Unicast only: no multicast frame crossed the link in either direction.
    assert devices_host.multicast_frames() == 0 and bridge_host.multicast_frames() == 0
