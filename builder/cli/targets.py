"""What a command works on: a profile (validated and planned) or a build directory, the output root, and
the machine's build lock."""

import argparse
import os
from pathlib import Path
from typing import Optional

from ..build.manifest import read_manifest
from ..knowledge.host import find_debian_mirror
from ..plan.model import Plan
from ..plan.planner import make_plan
from ..profile.errors import Problem, UsageError
from ..profile.loader import read_profile
from ..profile.lock import read_lock


def load_plan(path: Path, allowed: tuple[Path, ...] = ()) -> tuple[Plan, list[Problem]]:
    """load -> validate -> plan for one profile file (reads the host's apt mirror)."""
    profile, source = read_profile(path)
    return make_plan(profile, str(path), source, find_debian_mirror(), allowed_dirs=allowed, lock=read_lock(path))


def out_root(args: argparse.Namespace) -> Path:
    return args.out or Path(os.environ.get("PMEM_IMAGE_OUT", "out"))


def machine_build_lock() -> Optional[Path]:
    """$PMEM_IMAGE_BUILD_LOCK: the file builds on this machine take turns on (none: builds do not wait)."""
    value = os.environ.get("PMEM_IMAGE_BUILD_LOCK")
    return Path(value) if value else None


def plan_of_build(directory: Path) -> Plan:
    plan_file = directory / "plan.json"
    if not plan_file.exists():
        raise UsageError(f"{directory} holds no plan.json", "pass a profile or a directory made by pmem-image build")
    try:
        return Plan.model_validate_json(plan_file.read_text())
    except ValueError:
        raise UsageError(f"{plan_file} was written by another version of pmem-image",
                         "build the profile again with this version, then verify") from None


def resolve_target(args: argparse.Namespace, target: Path | None = None) -> tuple[Plan, Path]:
    """PROFILE or out/NAME -> the plan and the build directory (verify, run)."""
    target = target or args.target
    if target.is_dir():
        return plan_of_build(target), target
    plan, warnings = load_plan(target, tuple(args.allow_path))
    directory = out_root(args) / plan.name
    built = read_manifest(directory)
    # Judging (or running) an image by a plan it was not built from would show the wrong thing.
    if built is not None and built.get("plan_hash") != plan.digest():
        raise UsageError(f"{directory} was built from a different plan than {target} gives now",
                         f"build it first (pmem-image build {target}), or use the build as it is: "
                         f"pmem-image {args.command} {directory}")
    return plan, directory
