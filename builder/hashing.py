"""Content hashes for files and source trees (build keys, SHA256SUMS, tarball checks)."""

import hashlib
import os
import subprocess
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_tree(path: Path) -> str:
    """Identity of a local tree: git HEAD plus uncommitted changes, else every file's size and mtime."""
    digest = hashlib.sha256()
    git = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    if git.returncode == 0:
        digest.update(git.stdout.encode())
        digest.update(subprocess.run(["git", "-C", str(path), "diff", "HEAD"], capture_output=True).stdout)
        return digest.hexdigest()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            stat = os.lstat(os.path.join(root, name))
            digest.update(f"{os.path.relpath(os.path.join(root, name), path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                          .encode())
    return digest.hexdigest()
