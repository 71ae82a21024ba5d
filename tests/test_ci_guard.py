"""The rule of the root conftest.py: under CI=true a skipped test fails the
run, so a green CI means PostgreSQL, Redis, the worker, SMTP and Chromium
really ran. Checked in a separate pytest process on a two-test suite."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"

SUITE = """
import pytest

def test_passes():
    assert True

def test_needs_a_service():
    pytest.skip("PostgreSQL is not running")
"""


def _run(tmp_path, *, ci: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT_CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {"PATH": "/usr/bin:/bin", "CI": ci}
    return subprocess.run(  # noqa: S603 - our own interpreter on a file we wrote
        [sys.executable, "-m", "pytest", "-q", "-p", "no:django", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_the_run_under_ci(tmp_path):
    result = _run(tmp_path, ci="true")

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "SKIPPED (not allowed in CI): test_suite.py::test_needs_a_service" in result.stdout


def test_a_skip_is_allowed_outside_ci(tmp_path):
    result = _run(tmp_path, ci="")

    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "1 skipped" in result.stdout
