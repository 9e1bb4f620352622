"""mypy (with pydantic's plugin) and ruff over the code, at the settings pyproject.toml states: a new type
error or lint finding fails the unit tier."""

import subprocess
import sys

from conftest import ROOT


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_mypy_finds_no_type_errors_in_builder():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ruff_finds_nothing():
    result = _run("ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
