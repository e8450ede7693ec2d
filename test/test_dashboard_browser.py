"""The operator dashboard in headless Chromium against a real bridge, manager and workers.

Debian's /usr/bin/chromium is driven with Playwright's Python API (Playwright's own browser
download does not work here). Screenshots go to this module's temp dir.
"""

from collections.abc import Iterator
from pathlib import Path
import re
import socket

import httpx
import pytest
import yaml

from sensor_workers import paths
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.waiting import wait_until

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update',
                 '--disable-sync']
TOKEN = 'dashboard-test-token'
TOKEN_KEY = 'sensor_workers.token'
VIEWPORT = {'width': 1280, 'height': 800}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason='/usr/bin/chromium is missing (apt-get install chromium)')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Stack:
    """Manager (spawning the emulated camera and F/T workers) and a bridge with a token."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.group = ProcessGroup(log_dir, env)
        # sim.yaml, with the camera's recordings in this run's temp dir instead of ~/.ros.
        self.recordings = log_dir / 'recordings'
        config = yaml.safe_load(paths.config_file('sim.yaml').read_text())
        config['camera']['ros__parameters']['recording_dir'] = str(self.recordings)
        self.config = str(log_dir / 'dashboard_test.yaml')
        Path(self.config).write_text(yaml.safe_dump(config))
        self.bridge = None

    def start_manager(self) -> None:
        self.group.start_python('manager', 'sensor_workers.manager.node',
                                '--ros-args', '--params-file', self.config)

    def start_bridge(self) -> None:
        self.bridge = self.group.start_python(
            f'bridge-{len(self.group.processes)}', 'sensor_workers.bridge',
            '--ros-args', '--params-file', self.config,
            '-p', f'port:={self.port}', '-p', f'auth_token:={TOKEN}')
        wait_until(lambda: httpx.get(f'{self.url}/health', timeout=1).status_code == 200,
                   60, 'bridge /health', period=0.1, tolerate=(httpx.HTTPError,))

    def stop_bridge(self) -> None:
        self.bridge.stop()
        self.group.processes.remove(self.bridge)

    def status(self) -> dict:
        answer = httpx.get(f'{self.url}/status', timeout=2,
                           headers={'Authorization': f'Bearer {TOKEN}'})
        answer.raise_for_status()
        return answer.json()


def _device_states(status: dict) -> dict[str, str]:
    devices = status.get('devices', {})
    if isinstance(devices, list):
        devices = {d['name']: d for d in devices}
    return {name: d.get('state') for name, d in devices.items()}


@pytest.fixture(scope='module')
def stack(tmp_path_factory: pytest.TempPathFactory, ros_env: dict[str, str]) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp('stack'), ros_env)
    try:
        running.start_manager()
        running.start_bridge()
        wait_until(lambda: _device_states(running.status()) == {'camera': 'active',
                                                                 'ft': 'active'},
                   40, 'both devices active', period=0.1, tolerate=(httpx.HTTPError,))
        yield running
    finally:
        running.group.stop_all()


@pytest.fixture(scope='module')
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp('screenshots')


@pytest.fixture(scope='module')
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Dashboard:
    """One open dashboard page and the console errors it has logged."""

    def __init__(self, browser, url: str, token: str | None) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        if token is not None:
            self.context.add_init_script(f'sessionStorage.setItem("{TOKEN_KEY}", "{token}")')
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on('console',
                     lambda msg: self.errors.append(msg.text) if msg.type == 'error' else None)
        self.page.on('pageerror', lambda exc: self.errors.append(f'uncaught: {exc}'))
        self.page.goto(url)

    def heap_mb(self) -> float:
        """Return the page's JS heap in MB after a full garbage collection."""
        cdp = self.context.new_cdp_session(self.page)
        try:
            cdp.send('HeapProfiler.collectGarbage')
            return cdp.send('Runtime.getHeapUsage')['usedSize'] / 1e6
        finally:
            cdp.detach()

    def stats(self) -> dict:
        return self.page.evaluate('window.dashboard.stats')

    def wait_for(self, expression: str, timeout: float) -> None:
        """Wait until a JS expression over `s` (the dashboard's stats) is true."""
        self.page.wait_for_function(
            f'() => {{ const s = window.dashboard.stats; return {expression}; }}',
            timeout=timeout * 1000)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope='module')
def dashboard(browser, stack: Stack) -> Iterator[Dashboard]:
    """Open a dashboard whose session already holds the right token (as after the form)."""
    page = Dashboard(browser, stack.url, TOKEN)
    yield page
    page.close()


ALL_OPEN = ('s.connections.bridge === "open" && s.connections.image === "open" && '
            's.connections.wrench === "open" && s.connections.events === "open"')


def test_page_shows_live_image_plot_and_health(dashboard: Dashboard, shots: Path) -> None:
    page = dashboard.page
    dashboard.wait_for(f'{ALL_OPEN} && s.imageFrames >= 2 && s.wrenchSamples > 200', 20)
    heap_before = dashboard.heap_mb()
    first = page.locator('#image').screenshot(path=shots / 'image-1.png')
    seq = dashboard.stats()['imageSeq']
    dashboard.wait_for(f's.imageSeq >= {seq + 3}', 10)
    second = page.locator('#image').screenshot(path=shots / 'image-2.png')
    assert first != second, 'the image did not change between two screenshots'

    samples = dashboard.stats()['wrenchSamples']
    dashboard.wait_for(f's.wrenchSamples >= {samples + 500} && s.plotDraws > 10', 10)
    stats = dashboard.stats()
    assert stats['ringCapacity'] >= 10 * 1000, 'the ring buffer holds less than 10 s at 1 kHz'
    assert 0 < stats['requestedMaxWidth'] <= VIEWPORT['width']
    for device in ('camera', 'ft'):
        assert page.locator(f'#device-{device} .state').inner_text() == 'active'
    # Each card shows the bridge's latency figures and the rate history of the last polls.
    dashboard.wait_for('s.historyPoints.ft >= 2 && s.latency.ft && s.latency.ft.p50_ms !== null '
                       '&& s.latency.camera && s.latency.camera.p50_ms !== null', 10)
    for device in ('camera', 'ft'):
        latency = page.locator(f'#device-{device} .f-latency').inner_text()
        assert re.fullmatch(r'[\d.]+ / [\d.]+ ms', latency), f'{device} latency: {latency!r}'
        history = page.locator(f'#device-{device} .f-history').inner_text()
        assert re.fullmatch(r'\d+ (s|min): .+ Hz, [\d,]+ dropped', history), history
    page.screenshot(path=shots / 'dashboard.png')
    # Preallocated ring buffers, a bounded events list: the heap does not grow with the data.
    heap_after = dashboard.heap_mb()
    assert heap_after < heap_before + 3, f'JS heap grew {heap_before:.1f} -> {heap_after:.1f} MB'
    assert dashboard.errors == [], f'console errors: {dashboard.errors}'


def test_recording_state_follows_the_buttons(dashboard: Dashboard, stack: Stack,
                                             shots: Path) -> None:
    page = dashboard.page
    state = page.locator('#record-state')
    dashboard.wait_for('s.recording !== null && !s.recording.recording', 10)
    assert state.inner_text() == 'not recording'
    page.click('#record-start')
    page.wait_for_selector('#record-result[data-result="applied"]', timeout=10000)
    # The camera's diagnostics (1 Hz) reach the page with the next /status poll.
    dashboard.wait_for('s.recording.recording && s.recording.frames > 0', 10)
    path = Path(dashboard.stats()['recording']['path'])
    assert path.parent == stack.recordings
    assert re.fullmatch(rf'recording {re.escape(path.name)} · [\d,]+ frames( · [\d,]+ dropped)?',
                        state.inner_text())
    # The worker's info line arrives in the log panel (live, or from /status).
    page.locator('#logs li[data-node="camera"]', has_text=f'recording to {path}').wait_for(
        timeout=10000)
    page.screenshot(path=shots / 'recording.png')
    page.click('#record-stop')
    dashboard.wait_for('!s.recording.recording', 10)
    assert state.inner_text() == 'not recording'
    assert path.stat().st_size > 0
    path.unlink()  # 1024x1040 frames at 30 fps: not worth keeping in the temp dir


def _visible_log_levels(page) -> list[str]:
    return page.evaluate('[...document.querySelectorAll("#logs li")]'
                         '.filter(li => li.offsetParent !== null).map(li => li.dataset.level)')


def test_restart_button_restarts_ft_and_data_resumes(dashboard: Dashboard, shots: Path) -> None:
    page = dashboard.page
    dashboard.wait_for(f'{ALL_OPEN} && s.devices.ft && s.devices.ft.state === "active"', 20)
    before = dashboard.stats()
    restarts = int(before['devices']['ft'].get('restarts') or 0)
    page.click('#restart-ft')
    page.wait_for_selector('#device-ft .restart-result[data-result="applied"]', timeout=10000)
    # The health panel counts the restart and the events list shows it.
    dashboard.wait_for(f'Number(s.devices.ft.restarts) > {restarts}', 30)
    page.wait_for_selector('#events li[data-device="ft"]', timeout=10000)
    page.screenshot(path=shots / 'restart.png')
    dashboard.wait_for('s.devices.ft.state === "active"', 30)
    samples = dashboard.stats()['wrenchSamples']
    dashboard.wait_for(f's.wrenchSamples > {samples + 500}', 20)
    assert page.locator('#device-ft .f-restarts').inner_text() == str(restarts + 1)
    assert dashboard.stats()['devices']['ft']['pid'] != before['devices']['ft']['pid']
    page.screenshot(path=shots / 'after-restart.png')

    # The manager's warning is in the log panel once, though /status and the websocket both
    # bring it; its info lines about the restart are there too.
    requested = page.locator('#logs li[data-node="manager"][data-level="warn"]',
                             has_text='ft: restart_requested: restart requested')
    requested.first.wait_for(timeout=10000)
    page.locator('#logs li[data-node="manager"][data-level="info"]',
                 has_text='ft: active (pid').first.wait_for(timeout=10000)
    dashboard.wait_for(f's.statusPolls > {dashboard.stats()["statusPolls"]}', 10)
    assert requested.count() == 1
    # The level filter hides the info lines and shows them again.
    assert {'info', 'warn'} <= set(_visible_log_levels(page))
    page.select_option('#log-level', 'warn')
    assert 'info' not in _visible_log_levels(page)
    assert requested.is_visible()
    assert re.match(r'\d+ of \d+ lines', page.locator('#logs-meta').inner_text())
    page.select_option('#log-level', 'info')
    assert 'info' in _visible_log_levels(page)


def test_wrong_token_is_refused(browser, stack: Stack, shots: Path) -> None:
    fresh = Dashboard(browser, stack.url, token=None)
    try:
        page = fresh.page
        page.wait_for_selector('#token-modal:not([hidden])', timeout=10000)
        page.fill('#token-input', 'not-the-token')
        page.click('#token-submit')
        page.wait_for_function(
            'document.getElementById("token-message").textContent.includes("refused")',
            timeout=10000)
        assert page.is_visible('#token-modal')
        assert fresh.stats()['wrenchSamples'] == 0
        page.screenshot(path=shots / 'token-refused.png')
        # The websockets refuse the wrong token on their own too.
        code = page.evaluate(
            'url => new Promise(done => { new WebSocket(url).onclose = ev => done(ev.code); })',
            stack.url.replace('http', 'ws') + '/ws/wrench?token=not-the-token')
        assert code in (1008, 1006)
        page.fill('#token-input', TOKEN)
        page.click('#token-submit')
        page.wait_for_selector('#token-modal', state='hidden', timeout=10000)
        fresh.wait_for(f'{ALL_OPEN} && s.wrenchSamples > 100', 20)
        assert page.evaluate(f'sessionStorage.getItem("{TOKEN_KEY}")') == TOKEN
    finally:
        fresh.close()


def test_api_docs_page_asks_for_the_token_and_renders_the_document(browser, stack: Stack,
                                                                   shots: Path) -> None:
    # /docs is the bridge's own page (no CDN): a robot without internet shows it too.
    docs = Dashboard(browser, stack.url + '/docs', token=None)
    try:
        page = docs.page
        page.wait_for_selector('#token-form:not([hidden])', timeout=10000)
        page.fill('#token-input', TOKEN)
        page.click('#token-form button')
        page.wait_for_selector('section.operation', timeout=10000)
        headings = page.locator('section.operation h2').all_inner_texts()
        assert any('/devices/{name}/params' in h for h in headings), headings
        assert page.locator('#schema-Status').count() == 1
        assert 'camera' in page.locator('section.operation', has_text='/tare').inner_text()
        assert 'object HTML' not in page.content()  # every part rendered as elements
        page.screenshot(path=shots / 'api-docs.png')
        # Chromium logs the first fetch's 401 (before the token) as a console error.
        assert [e for e in docs.errors if '401' not in e] == [], docs.errors
    finally:
        docs.close()


def test_reconnects_after_bridge_restart(dashboard: Dashboard, stack: Stack,
                                         shots: Path) -> None:
    dashboard.wait_for(ALL_OPEN, 20)
    stack.stop_bridge()
    dashboard.wait_for('s.connections.wrench !== "open" && s.connections.image !== "open"', 10)
    assert dashboard.page.is_visible('#banner')
    dashboard.page.screenshot(path=shots / 'bridge-down.png')
    stack.start_bridge()
    samples = dashboard.stats()['wrenchSamples']
    dashboard.wait_for(f'{ALL_OPEN} && s.wrenchSamples > {samples + 200}', 30)
    # The banner is updated by the page's own status poll, a moment after the sockets reopen.
    dashboard.page.wait_for_selector('#banner', state='hidden', timeout=10000)
