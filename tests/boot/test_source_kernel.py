"""A kernel compiled from Debian's linux-source in the kbuild sandbox, installed into an image and booted by
GRUB like the distribution's kernel. A file of its own, so that the boot tier's longest build is a unit of
its own for the two workers (scripts/test)."""

import json
import os

import pytest

from cli import OUT, pmem_image, report_of
from conftest import PROFILES

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]


def test_kernel_built_from_debian_source_boots_and_proves():
    """linux-source-6.1, tinyconfig + the pmem fragments, compiled (ccache), installed into the image and booted
    by GRUB like the distro kernel; the proof checks the running release and its /proc/config.gz."""
    result = pmem_image("build", "--verify", "--json", str(PROFILES / "debian-source-6.1.yaml"), timeout=3600)
    report = report_of(result)
    assert result.returncode == 0 and report.get("passed"), result.stdout[-4000:] + result.stderr[-4000:]
    manifest = json.loads((OUT / "debian-source-6-1" / "manifest.json").read_text())
    assert manifest["kernel_release"].endswith("-pmem") and manifest["kernel_build_key"]
    assert report["guest_report"]["kernel_release"] == manifest["kernel_release"]
    # a kernel built here carries its own config (IKCONFIG_PROC): the options row reads the running kernel
    assert {c["name"] for c in report["checks"] if c["passed"]} >= {
        "kernel release", "kernel options (running kernel)", "/dev/pmem1 DAX active", "no failed units"}
    # a second image with the same kernel does not compile it again
    rebuilt = pmem_image("build", "--force", str(PROFILES / "debian-source-6.1.yaml"), timeout=3600)
    assert rebuilt.returncode == 0 and "kernel: cached build" in rebuilt.stderr, rebuilt.stderr[-3000:]
