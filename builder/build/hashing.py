"""Content hashes for files and source trees (build keys, SHA256SUMS, tarball checks)."""

import hashlib
import json
import os
from pathlib import Path

from ..runner import Runner


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file_memo(path: Path, memo: Path) -> str:
    """sha256 of a large input file, remembered in `memo` by (path, size, mtime, inode): the identity is
    the content, the memo only saves re-reading an unchanged file on every no-op build."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known = {k: v for k, v in known.items() if not k.startswith(f"{path.resolve()}:")}
        known[key] = sha256_file(path)
        memo.parent.mkdir(parents=True, exist_ok=True)
        partial = memo.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(partial, memo)
    return known[key]


def sha256_of_tree(path: Path, runner: Runner) -> str:
    """Identity of a local tree: git HEAD plus uncommitted changes, else every file's size and mtime."""
    digest = hashlib.sha256()
    head = runner.query(["git", "-C", str(path), "rev-parse", "HEAD"])
    if head.returncode == 0:
        digest.update(head.stdout.encode())
        digest.update(runner.query(["git", "-C", str(path), "diff", "HEAD"]).stdout.encode())
        return digest.hexdigest()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            stat = os.lstat(os.path.join(root, name))
            digest.update(f"{os.path.relpath(os.path.join(root, name), path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                          .encode())
    return digest.hexdigest()


def sha256_of_content(path: Path) -> str:
    """Identity of a directory by what it holds (relative paths, types, modes, link targets, file contents),
    not where it is or when it was touched: the same extra tree in another checkout is the same input."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            entry = Path(root) / name
            stat = os.lstat(entry)
            relative = entry.relative_to(path)
            if entry.is_symlink():
                detail = f"link {os.readlink(entry)}"
            elif entry.is_file():
                detail = f"file {stat.st_mode & 0o7777:o} {sha256_file(entry)}"
            else:
                detail = f"dir {stat.st_mode & 0o7777:o}"
            digest.update(f"{relative}\0{detail}\n".encode())
    return digest.hexdigest()
