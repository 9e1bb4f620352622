"""The fault-injection suite's full disk (marker `faults`): the output root on a small tmpfs that runs out
of space mid-build, once inside mkosi (the stand-in writes a disk bigger than what is left) and once in
pmem-image's own writes after mkosi (the disk leaves a few KiB). Either way: exit 3 with the path and a
hint, no traceback, the earlier output whole, no staging directory left."""

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from stand_in import build, finish, leftovers, output, whole

pytestmark = [pytest.mark.integration, pytest.mark.faults,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root")]


@pytest.fixture
def small_out(env: dict, tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs as the output root, unmounted afterwards."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mountpoint)], check=True)
    env["PMEM_IMAGE_OUT"] = str(mountpoint / "out")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_mkosi_running_out_of_space_is_a_tool_failure_that_keeps_the_earlier_output(env, small_out):
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    env["FAKE_MKOSI_RAW_BYTES"] = str(16 << 20)
    code, text = finish(build(env, "--force"))
    assert code == 3 and "No space left on device" in text and "Traceback" not in text, text
    assert (output(env) / "manifest.json").read_text() == before and whole(output(env))
    assert leftovers(env) == []


def test_pmem_image_running_out_of_space_after_mkosi_says_where_and_exits_3(env, small_out):
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    env["FAKE_MKOSI_RAW_BYTES"] = str(free_bytes(small_out) - (8 << 10))
    code, text = finish(build(env, "--force"))
    assert code == 3 and "Traceback" not in text, text
    error = text[text.index("pmem-image: error:"):]
    assert f"No space left on device ({small_out}/out/.staging-default-" in error, error
    assert "hint: the filesystem is full" in error, error
    assert (output(env) / "manifest.json").read_text() == before and whole(output(env))
    assert leftovers(env) == []
