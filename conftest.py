"""Suite-wide rules.

Under CI=true no test may be skipped: a skipped integration test would make
a green run claim that PostgreSQL, Redis, the worker or SMTP were tested
when they were not."""

import os

import pytest

_skipped: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _in_ci() and _skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _in_ci() and _skipped:
        terminalreporter.section("skipped tests fail the run under CI=true", red=True)
        for nodeid in _skipped:
            terminalreporter.line(f"SKIPPED (not allowed in CI): {nodeid}")
