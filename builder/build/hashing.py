"""Content hashes for files and source trees (build keys, SHA256SUMS, tarball checks)."""

import hashlib
import json
import os
from pathlib import Path



_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)


def sha256_file(path: Path) -> str:
    """The file's sha256, reading only its data: a hole (most of a fresh raw disk) is hashed as the zeros it
    reads as, without asking the kernel to produce them."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        size = os.fstat(stream.fileno()).st_size
        for start, end, is_data in _extents(stream.fileno(), size):
            if is_data:
                stream.seek(start)
                left = end - start
                while left and (chunk := stream.read(min(_CHUNK, left))):
                    digest.update(chunk)
                    left -= len(chunk)
                if left:
                    raise OSError(f"{path} shrank while it was hashed")
            else:
                for offset in range(start, end, _CHUNK):
                    digest.update(_ZEROS[:min(_CHUNK, end - offset)])
    return digest.hexdigest()


def _extents(fd: int, size: int):
    """(start, end, is_data) spans covering the file, from SEEK_DATA/SEEK_HOLE (one data span where the
    filesystem cannot tell)."""
    position = 0
    while position < size:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError:             # ENXIO: only a hole is left; EINVAL: no hole support
            data = size if _has_holes(fd) else position
        if data > position:
            yield position, min(data, size), False
        if data >= size:
            return
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        yield data, min(hole, size), True
        position = hole


def _has_holes(fd: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_HOLE)
        return True
    except OSError:
        return False


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


def sha256_of_tree(path: Path) -> str:
    """Identity of a local kernel tree: its content, untracked files included, .git left out. Never git:
    run as root over the tree's own .git/config, git executes what core.fsmonitor or diff.external name."""
    return sha256_of_content(path, skip=frozenset({".git"}))


def sha256_of_content(path: Path, skip: frozenset[str] = frozenset()) -> str:
    """Identity of a directory by what it holds (relative paths, types, modes, link targets, file contents),
    not where it is or when it was touched: the same extra tree in another checkout is the same input.
    Symlinks are read, never followed; `skip` names top-level entries left out."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        if root == str(path):
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        dirs.sort()
        for name in sorted(dirs + files):
            entry = Path(root) / name
            stat = os.lstat(entry)
            relative = entry.relative_to(path)
            if entry.is_symlink():
                detail = f"link {os.readlink(entry)}"
            elif stat.st_mode & 0o170000 == 0o100000:      # a regular file (is_file() would follow links)
                detail = f"file {stat.st_mode & 0o7777:o} {sha256_file(entry)}"
            else:
                detail = f"dir {stat.st_mode & 0o7777:o}"
            digest.update(f"{relative}\0{detail}\n".encode())
    return digest.hexdigest()
