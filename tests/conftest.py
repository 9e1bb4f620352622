import os
import re
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
