"""Per-instance state kept apart from build outputs (render/launch.py says where): a rebuild, a substitute
or `clean` replaces or removes out/NAME/ whole, so nothing a user's machine wrote may live there. Outputs of
earlier pmem-image versions kept NVDIMM backing files in out/NAME/state/ and the run overlay in
out/NAME/run/: those are moved aside into OUT/.state/NAME/ before out/NAME/ goes, never deleted."""

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from ..render.launch import instance_state

LEGACY = ("state", "run")


def rescue_legacy_state(directory: Path, out_root: Path, name: str, say: Callable[[str], None]) -> list[Path]:
    """Move out/NAME/state and out/NAME/run (if present) into OUT/.state/NAME/rescued-*; returns where."""
    moved = []
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for child in LEGACY:
        source = directory / child
        if source.is_dir() and not source.is_symlink() and any(source.iterdir()):
            target = instance_state(out_root, name) / f"rescued-{child}-{stamp}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)
            say(f"{name}: kept {source} aside as {target} (per-instance state no longer lives in the output)")
            moved.append(target)
    return moved


def remove_state(out_root: Path, name: str) -> list[str]:
    """clean --state: the instance's state directories, named before they go."""
    root = instance_state(out_root, name)
    if not root.is_dir():
        return []
    names = sorted(p.name for p in root.iterdir())
    shutil.rmtree(root)
    return names
