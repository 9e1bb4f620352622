"""build --jobs 2 interrupted (review H4): Ctrl-C or SIGTERM stops every worker's mkosi, starts nothing that
was queued, replaces no output and exits 130 within seconds. The stand-in mkosi hangs until stopped."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CLI_WITHOUT_ROOT_CHECK, PROFILES, ROOT


def profile(directory: Path, name: str, release: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text((PROFILES / "default.yaml").read_text().replace("name: default", f"name: {name}")
                    .replace("release: bookworm", f"release: {release}"))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_jobs_build_stops_its_builds_and_starts_no_more(env, tmp_path, sig):
    profiles = [profile(tmp_path, "a", "bookworm"), profile(tmp_path, "b", "trixie"), profile(tmp_path, "c", "bookworm")]
    env["FAKE_MKOSI_MODE"] = "hang"
    process = subprocess.Popen([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, "build", "--jobs", "2", *map(str, profiles)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = Path(env["FAKE_MKOSI_STATE"]) / "started"
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and process.poll() is None, "no mkosi started"
        time.sleep(0.05)
    time.sleep(1)          # a's and b's mkosi both run (two releases: two package caches)
    process.send_signal(sig)
    sent = time.monotonic()
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err[-3000:]
    assert time.monotonic() - sent < 10, "the command waited for its workers' builds"
    out_root = Path(env["PMEM_IMAGE_OUT"])
    assert subprocess.run(["pgrep", "-f", f"{out_root}/.staging-"], capture_output=True).returncode == 1
    assert list(out_root.glob(".staging-*")) == [] and not any((out_root / n).exists() for n in "abc")
    assert "/.staging-c-" not in err, "a queued build started after the interrupt"
    assert "interrupted" in err


def test_two_profiles_with_one_name_are_refused_before_anything_runs(env, tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    result = subprocess.run([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, "build",
                             str(profile(first, "same", "bookworm")), str(profile(second, "same", "trixie"))],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "both named 'same'" in result.stderr, result.stderr
    assert not (Path(env["PMEM_IMAGE_OUT"]) / "same").exists()
