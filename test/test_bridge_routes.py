"""The HTTP control routes built from settings, a hub and a fake controller: no ROS at all.

create_app(settings, hub, controller) is what makes a second protocol (or a test) possible
without the concrete node; the routes reach ROS only through the controller interface.
"""

from collections.abc import Iterator

from app_helpers import FakeController, serve
import httpx
import pytest

from sensor_workers.bridge.settings import BridgeSettings

SETTINGS = BridgeSettings(devices=('camera', 'ft'), cameras=('camera',))


@pytest.fixture(scope='module')
def bridge() -> Iterator[tuple[str, FakeController]]:
    controller = FakeController(
        {'camera': {'frame_rate': 30.0, 'width': 640, 'frame_id': 'cam', 'emulate': True}},
        {'/ft/tare': (True, 'tared'), '/camera/start_recording': (False, 'no disk')},
        read_only=('width',))
    with serve(SETTINGS, controller) as (url, _):
        assert controller.spinning  # the lifespan started it
        yield url, controller
    assert not controller.spinning


def test_parameters_take_the_validated_path(bridge):
    url, controller = bridge
    answer = httpx.post(f'{url}/devices/camera/params', json={'frame_rate': 15})
    assert answer.status_code == 200, answer.text
    assert answer.json()['applied'] == ['frame_rate']
    # A JSON integer for a double parameter becomes a double before it reaches the node.
    assert controller.parameters['camera']['frame_rate'] == 15.0
    assert isinstance(controller.parameters['camera']['frame_rate'], float)

    refused = httpx.post(f'{url}/devices/camera/params', json={'width': 320})
    assert refused.status_code == 409 and 'read-only' in refused.json()['detail']
    invalid = httpx.post(f'{url}/devices/camera/params', json={'frame_id': 3, 'nope': 1})
    assert invalid.status_code == 422
    results = invalid.json()['results']
    assert results['frame_id']['status'] == 'invalid' and results['nope']['status'] == 'invalid'
    assert controller.parameters['camera']['frame_id'] == 'cam'
    assert httpx.post(f'{url}/devices/camera/params', json=[1]).status_code == 422
    assert httpx.post(f'{url}/devices/robot/params', json={'a': 1}).status_code == 404
    # The worker is down: the controller says so, the route answers 503.
    assert httpx.post(f'{url}/devices/ft/params', json={'a': 1}).status_code == 503


def test_services_through_the_controller(bridge):
    url, controller = bridge
    tare = httpx.post(f'{url}/devices/ft/tare')
    assert tare.status_code == 200 and tare.json()['message'] == 'tared'
    recording = httpx.post(f'{url}/devices/camera/recording', json={'action': 'start'})
    assert recording.status_code == 409 and recording.json()['detail'] == 'no disk'
    assert httpx.post(f'{url}/devices/ft/restart').status_code == 503
    assert controller.calls[-3:] == ['/ft/tare', '/camera/start_recording',
                                     '/manager/ft/restart']
