"""Writing a rendered tree to disk: all or nothing, never half a tree."""

import os
import shutil
import tempfile
from pathlib import Path

from ..profile.errors import UsageError
from ..render.outputs import RenderedFile

MARKER = ".pmem-image-tree"


def write_tree(files: dict[str, RenderedFile], destination: Path, force: bool = False) -> None:
    """Write files into a fresh directory beside `destination`, then swap it into place."""
    destination = destination.absolute()
    if destination.exists():
        ours = (destination / MARKER).exists() or (destination.is_dir() and not any(destination.iterdir()))
        if not destination.is_dir() or not (ours or force):
            raise UsageError(f"{destination} exists and was not written by pmem-image",
                                 "choose another -o directory, or pass --force to replace it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        for relative, rendered in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rendered.content, encoding="utf-8")
            target.chmod(0o755 if rendered.executable else 0o644)
        (staging / MARKER).write_text("rendered by pmem-image; replaced as a whole on every render\n")
        replace_dir(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_dir(new: Path, destination: Path) -> None:
    """Move `new` to `destination`, removing what was there only after the move."""
    old = None
    if destination.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.rename(destination, old / "tree")
    os.rename(new, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
