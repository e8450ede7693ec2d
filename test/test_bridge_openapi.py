"""The bridge's OpenAPI document against a real bridge process, fuzzed by schemathesis.

Served behind the token, complete (every status the bridge answers), all checks clean.

No worker runs: control requests that pass validation meet no ROS service and get 503 after a
short `service_timeout_s`, which keeps the schemathesis run fast.
"""

from collections.abc import Iterator
from pathlib import Path
import sys

from bridge_helpers import Bridge
import httpx
import pytest

from sensor_workers.bridge.schemas import PROMETHEUS_TEXT
from sensor_workers.testing.processes import ProcessGroup

pytestmark = pytest.mark.integration
TOKEN = 'openapi-test-token'
CONFIG = Path(__file__).with_name('schemathesis.toml')
# Bounds of the schemathesis run: cases per operation and phase, and the whole run's time.
MAX_EXAMPLES = 40
RUN_TIMEOUT_S = 120


@pytest.fixture(scope='module')
def group(tmp_path_factory: pytest.TempPathFactory, ros_env) -> Iterator[ProcessGroup]:
    group = ProcessGroup(tmp_path_factory.mktemp('bridge_openapi'), ros_env)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope='module')
def bridge(group: ProcessGroup) -> Bridge:
    return Bridge(group, 'max_body_bytes:=1024', 'service_timeout_s:=0.1',
                  "allowed_origins:=['http://ops.example']", token=TOKEN)


def test_the_document_needs_the_token_the_docs_page_does_not(bridge):
    page = httpx.get(bridge.url + '/docs')
    assert page.status_code == 200 and page.headers['content-type'].startswith('text/html')
    assert '/static/docs.js' in page.text and 'http' not in page.text.split('<body>')[0]
    assert httpx.get(bridge.url + '/static/docs.js').status_code == 200
    refused = httpx.get(bridge.url + '/openapi.json')
    assert refused.status_code == 401 and refused.headers['www-authenticate'] == 'Bearer'
    foreign = bridge.get('/openapi.json', headers={**bridge.headers,
                                                   'Origin': 'http://evil.example'})
    assert foreign.status_code == 403
    assert bridge.get('/openapi.json').status_code == 200


def test_every_route_documents_its_statuses(bridge):
    doc = bridge.get('/openapi.json').json()
    operations = {(method, path): op for path, item in doc['paths'].items()
                  for method, op in item.items()}
    assert set(operations) == {
        ('get', '/health'), ('get', '/status'), ('get', '/metrics'),
        ('post', '/devices/{name}/params'), ('post', '/devices/{name}/recording'),
        ('post', '/devices/{name}/tare'), ('post', '/devices/{name}/restart')}
    assert 'security' not in operations['get', '/health']
    for (method, path), op in operations.items():
        statuses = set(op['responses'])
        if path == '/health':
            continue
        assert op['security'] == [{'HTTPBearer': []}], path
        assert {'200', '401', '403'} <= statuses, path
        assert 'WWW-Authenticate' in op['responses']['401']['headers'], path
        if method == 'post':
            assert {'400', '404', '409', '413', '422', '503', '504'} <= statuses, path
    assert list(operations['get', '/metrics']['responses']['200']['content']) == \
        [PROMETHEUS_TEXT]
    assert operations['get', '/status']['responses']['200']['content']['application/json'][
        'schema'] == {'$ref': '#/components/schemas/Status'}
    for (_, path), op in operations.items():  # the names this bridge serves
        if '{name}' in path:
            name = next(p for p in op['parameters'] if p['name'] == 'name')
            assert name['schema']['enum'] == ['camera', 'ft'], path


def test_a_wrong_method_gets_405_with_allow(bridge):
    answer = httpx.put(bridge.url + '/status', headers=bridge.headers)
    assert answer.status_code == 405 and answer.headers['allow'] == 'GET'
    answer = bridge.get('/devices/ft/tare')
    assert answer.status_code == 405 and answer.headers['allow'] == 'POST'
    assert bridge.get('/no/such/path').json() == {'detail': 'Not Found'}


def test_schemathesis_finds_no_mismatch(bridge, group):
    run = group.start('schemathesis', [
        str(Path(sys.executable).with_name('st')), '--config-file', str(CONFIG), 'run',
        f'{bridge.url}/openapi.json', '--checks', 'all', '--max-examples', str(MAX_EXAMPLES),
        # One worker: schemathesis's threads made CPython 3.11's ast.parse (hypothesis describing
        # a filter) raise `SystemError: AST constructor recursion depth mismatch` in 1 run of 3.
        '--header', f'Authorization: Bearer {TOKEN}', '--workers', '1',
        '--generation-database', 'none', '--no-color'])
    code = run.popen.wait(RUN_TIMEOUT_S)
    output = run.output()
    assert code == 0, output[-12000:]
    assert 'No issues found' in output
    assert bridge.process.alive()
