import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from builder.knowledge.host import AptMirror
from builder.profile.loader import profile_from_text, read_profile
from builder.plan.planner import make_plan

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"
FIXTURES = Path(__file__).resolve().parent / "profiles"
GOLDEN = Path(__file__).resolve().parent / "golden"
TEST_MIRROR = AptMirror(archive="http://deb.debian.org/debian", security="http://deb.debian.org/debian-security")
PMEM_IMAGE = ROOT / ".venv" / "bin" / "pmem-image"


def plan_of_text(text: str, filename: str = "test.yaml"):
    profile, source = profile_from_text(text, filename)
    return make_plan(profile, filename, source, TEST_MIRROR)


def plan_of_file(path: Path):
    profile, source = read_profile(path)
    return make_plan(profile, str(path), source, TEST_MIRROR)


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.*)$", path.read_text(), re.M)


@pytest.fixture
def out_root(tmp_path: Path) -> Path:
    return tmp_path / "out"


ROOT_PARTITION_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"     # x86-64 root (discoverable partitions)


def root_filesystem(image: Path) -> tuple[str, int]:
    """A raw image's root filesystem as debugfs opens it ("image?offset=N") and the partition's size."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    root = next(p for p in table["partitions"] if p["type"] == ROOT_PARTITION_TYPE)
    sector = table.get("sectorsize", 512)
    return f"{image}?offset={root['start'] * sector}", root["size"] * sector


def debugfs(source: str, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, source], capture_output=True, text=True).stdout
