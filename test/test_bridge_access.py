"""Access rules and bad input against a real bridge process: 401/403/413/422, close codes.

A probe publishes a wrench stream so the last test can show the bridge still serves data after
all the abuse.
"""

import asyncio
from collections.abc import Iterator
import json

from bridge_helpers import Bridge, close_code, receive, wrench_source
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration
TOKEN = 'access-test-token'
MAX_CLIENTS = 3


@pytest.fixture(scope='module')
def bridge(tmp_path_factory: pytest.TempPathFactory, ros_env) -> Iterator[Bridge]:
    group = ProcessGroup(tmp_path_factory.mktemp('bridge_access'), ros_env)
    try:
        yield Bridge(group, f'max_clients:={MAX_CLIENTS}', 'max_body_bytes:=1024',
                     'max_ws_message_bytes:=256', "allowed_origins:=['http://ops.example']",
                     'service_timeout_s:=0.5', token=TOKEN)
    finally:
        group.stop_all()


@pytest.fixture(scope='module')
def wrench() -> Iterator[None]:
    with wrench_source():
        yield


def test_health_is_public_everything_else_needs_the_token(bridge):
    assert httpx.get(bridge.url + '/health').status_code == 200
    for path in ('/status', '/metrics'):
        answer = httpx.get(bridge.url + path)
        assert answer.status_code == 401 and answer.headers['www-authenticate'] == 'Bearer'
        assert 'token' in answer.json()['detail']
        wrong = httpx.get(bridge.url + path, headers={'Authorization': 'Bearer nope'})
        assert wrong.status_code == 401
        assert bridge.get(path).status_code == 200
    assert httpx.post(bridge.url + '/devices/ft/tare').status_code == 401
    # The dashboard files carry no secrets: the page must load to ask for the token.
    assert httpx.get(bridge.url + '/').status_code == 200


def test_websockets_need_the_token(bridge):
    async def run():
        for path in ('/ws/wrench', '/ws/image', '/ws/events'):
            assert await close_code(f'{bridge.ws_url}{path}') == 1008
            assert await close_code(f'{bridge.ws_url}{path}?token=nope') == 1008
            header = {'Authorization': f'Bearer {TOKEN}'}
            async with connect(f'{bridge.ws_url}{path}', additional_headers=header) as ws:
                if path == '/ws/events':
                    assert json.loads(await ws.recv())['type'] == 'device_states'

    asyncio.run(run())


def test_foreign_origins_are_refused(bridge):
    evil = {**bridge.headers, 'Origin': 'http://evil.example'}
    assert bridge.get('/status', headers=evil).status_code == 403
    ops = {**bridge.headers, 'Origin': 'http://ops.example'}
    assert bridge.get('/status', headers=ops).status_code == 200
    same = {**bridge.headers, 'Origin': bridge.url}
    assert bridge.get('/status', headers=same).status_code == 200

    async def run():
        assert await close_code(bridge.ws('/ws/wrench'), origin='http://evil.example') == 1008
        assert await close_code(bridge.ws('/ws/wrench'), origin='http://ops.example',
                                timeout=0.5) is None

    asyncio.run(run())


def test_malformed_oversized_and_unknown_requests(bridge):
    post = bridge.post
    assert post('/devices/ft/params', content=b'{"x": ', headers={
        **bridge.headers, 'content-type': 'application/json'}).status_code == 422
    assert post('/devices/ft/params', json=[1, 2]).status_code == 422
    assert post('/devices/ft/params', json={'bad name': 1}).status_code == 422
    assert post('/devices/ft/params', json={'x': 'y' * 2000}).status_code == 413
    answer = post('/devices/nope/params', json={'x': 1})
    assert answer.status_code == 404 and 'unknown device' in answer.json()['detail']
    assert post('/devices/camera/recording', json={'action': 'jump'}).status_code == 422
    assert post('/devices/camera/recording', json={'action': 'start', 'x': 1}).status_code == 422
    assert bridge.get('/devices/ft/tare').status_code in (404, 405)
    assert bridge.get('/no/such/path').status_code == 404
    # No worker runs here: the service is missing, and the answer says so in time.
    answer = post('/devices/ft/tare')
    assert answer.status_code == 503 and '/ft/tare' in answer.json()['detail']

    async def run():
        url = bridge.ws('/ws/image')
        assert await close_code(url, send='not json') == 4400
        assert await close_code(url, send='{"max_fps": -1}') == 4400
        assert await close_code(url, send=b'\x00\x01') == 1003
        assert await close_code(url, send='{"max_fps": 5}' + ' ' * 400) == 1009
        assert await close_code(url, send='{"max_fps": 5, "format": "raw"}', timeout=0.5) is None
        assert await close_code(bridge.ws('/ws/image', max_fps='fast')) == 4400
        assert await close_code(bridge.ws('/ws/image', format='png')) == 4400
        assert await close_code(bridge.ws('/ws/wrench', extra=1)) == 4400
        assert await close_code(bridge.ws('/ws/wrench'), send='{"max_fps": 5}') == 4400
        assert await close_code(bridge.ws('/ws/events', log_level='verbose')) == 4400
        assert await close_code(bridge.ws('/ws/events', max_fps=5)) == 4400
        assert await close_code(bridge.ws('/ws/events'), send='{"log_level": 3}') == 4400
        assert await close_code(bridge.ws('/ws/events', log_level='info'),
                                send='{"log_level": "error"}', timeout=0.5) is None

    asyncio.run(run())


def test_max_clients(bridge):
    async def run():
        async with connect(bridge.ws('/ws/events')) as a, connect(bridge.ws('/ws/events')) as b:
            async with connect(bridge.ws('/ws/events')) as c:
                await asyncio.gather(a.recv(), b.recv(), c.recv())
                assert await close_code(bridge.ws('/ws/events')) == 1013
        # Room again once one left.
        async with connect(bridge.ws('/ws/events')) as d:
            assert json.loads(await d.recv())['type'] == 'device_states'

    asyncio.run(run())
    rejected = bridge.get('/metrics').text
    assert 'sensor_workers_bridge_rejected_connections_total{reason="max_clients"}' in rejected


def test_bridge_keeps_serving_after_the_abuse(bridge, wrench):
    # The probe's publisher is new: wait for discovery before measuring.
    wait_until(lambda: asyncio.run(receive(bridge.ws('/ws/wrench'), 0.5)).samples > 0, 20,
               'wrench samples through the bridge')
    stream = asyncio.run(receive(bridge.ws('/ws/wrench'), seconds=1.0))
    assert stream.samples > 50 and stream.dropped == 0
    assert bridge.get('/health').status_code == 200
    status = bridge.status()
    assert status['clients'] == [] and status['bridge']['clients'] == 0
    assert bridge.process.alive()
    with pytest.raises(InvalidStatus):
        asyncio.run(close_code(bridge.ws('/ws/nothing')))
