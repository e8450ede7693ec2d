"""Static checks: ruff configured like ament_flake8 (ruff.toml), and mypy (mypy.ini)."""

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
def test_ruff():
    ruff = Path(sys.executable).with_name('ruff')
    if not ruff.exists():
        pytest.skip('ruff is not installed in this environment')
    result = subprocess.run(
        [str(ruff), 'check', 'src', 'test', 'bench', 'launch', 'setup.py'],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_mypy():
    mypy = Path(sys.executable).with_name('mypy')
    if not mypy.exists():
        pytest.skip('mypy is not installed in this environment')
    result = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
