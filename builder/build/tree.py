"""Writing a rendered tree to disk: all or nothing, never half a tree."""

import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

from ..profile.errors import UsageError
from ..render.outputs import RenderedFile
from ..runner import fault_point

MARKER = ".pmem-image-tree"


def write_tree(files: dict[str, RenderedFile], destination: Path) -> None:
    """Write files into a fresh directory beside `destination`, then swap it into place. Only an empty
    directory or an earlier render (it holds MARKER) is ever replaced: `render -o ~ --force` once replaced
    a home directory."""
    destination = destination.absolute()
    if destination.exists():
        ours = destination.is_dir() and not destination.is_symlink() and (
            (destination / MARKER).is_file() or not any(destination.iterdir()))
        if not ours:
            raise UsageError(f"{destination} exists and is not an earlier render of pmem-image (no {MARKER} in it)",
                             "choose another -o directory (a new or empty one); pmem-image replaces only its own renders")
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


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (renameat2 RENAME_EXCHANGE); False where the filesystem cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace_dir(new: Path, destination: Path) -> None:
    """Put `new` at `destination` in one step (review L2): the two are exchanged, so `destination` is never
    missing and a process killed midway leaves either the old or the new tree there, the other one in `new`
    (a staging directory, which the next build removes); then the old tree, now at `new`, is removed."""
    if destination.exists() and _exchange(new, destination):
        fault_point("swap")
        shutil.rmtree(new, ignore_errors=True)
        return
    old = None
    if destination.exists():     # a filesystem without RENAME_EXCHANGE: two renames, the old kept until the end
        old = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.rename(destination, old / "tree")
        fault_point("swap")
    os.rename(new, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(parent: Path, name: str) -> None:
    """What an older replace_dir killed between its renames left: .NAME.old.*/ (under the build's lock)."""
    for stale in parent.glob(f".{name}.old.*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
