"""flock-based locks under out/.locks: one per profile (a second build of it is refused at once) and one
per shared cache (a build of another profile that needs it waits)."""

import fcntl
import os
from pathlib import Path
from typing import Callable, Optional

from ..profile.errors import PmemImageError


class BuildLocked(PmemImageError):
    pass


class _FileLock:
    """An exclusive flock on a file that records the holder's pid; `_busy` decides what to do when taken."""

    def __init__(self, path: Path):
        self.path = path

    def _busy(self, holder: str) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            try:
                self._busy(self.handle.read().strip() or "another process")
            except BaseException:
                self.handle.close()
                raise
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        self.handle.truncate(0)
        self.handle.write(f"pid {os.getpid()}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


class BuildLock(_FileLock):
    """out/.locks/<name>.lock: a second build of the same profile refuses at once."""

    def __init__(self, out_root: Path, name: str):
        super().__init__(out_root / ".locks" / f"{name}.lock")

    def _busy(self, holder: str) -> None:
        raise BuildLocked(f"another build of this profile is running ({holder})",
                          "wait for it to finish, then run the build again (it will be a no-op if it succeeded)")


class CacheLock(_FileLock):
    """out/.locks/cache-<name>.lock: exclusive use of one shared cache; waits, saying so, while it is taken."""

    def __init__(self, out_root: Path, name: str, say: Optional[Callable[[str], None]] = None):
        super().__init__(out_root / ".locks" / f"cache-{name}.lock")
        self.name, self.say = name, say

    def _busy(self, holder: str) -> None:
        if self.say:
            self.say(f"waiting for the shared {self.name} cache ({holder} is using it)")
