"""flock-based locks under out/.locks: one per profile (a second build of it is refused at once) and, per
shared cache, one per entry a build uses (its release's package cache, its kernel source and base: a build of
another profile that needs the same entry waits; one that needs another entry does not) under a cache-wide
lock that builds hold shared and gc exclusive (gc waits for every build, and every build for gc)."""

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

from ..profile.errors import PmemImageError


class BuildLocked(PmemImageError):
    pass


class _FileLock:
    """A flock on a file, exclusive (the file then records the holder's pid) or shared; `_busy` decides what to
    do when it is taken."""

    def __init__(self, path: Path, shared: bool = False):
        self.path, self.mode = path, fcntl.LOCK_SH if shared else fcntl.LOCK_EX

    def _busy(self, holder: str) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, self.mode | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            try:
                self._busy(self.handle.read().strip() or "another process")
            except BaseException:
                self.handle.close()
                raise
            fcntl.flock(self.handle, self.mode)
        if self.mode == fcntl.LOCK_EX:
            self.handle.truncate(0)
            self.handle.write(f"pid {os.getpid()}\n")
            self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.mode == fcntl.LOCK_EX:       # no stale pid for the next one who waits on a shared hold
            self.handle.truncate(0)
        self.handle.close()


class BuildLock(_FileLock):
    """out/.locks/<name>.lock: held by a build, export or clean of the profile (exclusive: a second one refuses
    at once) and by a verify or run of its output (shared, review L11: a build cannot swap out/NAME away under
    a booted image, and a verify does not start on an output being replaced)."""

    def __init__(self, out_root: Path, name: str, shared: bool = False):
        super().__init__(out_root / ".locks" / f"{name}.lock", shared)
        self.name = name

    def _busy(self, holder: str) -> None:
        if self.mode == fcntl.LOCK_SH:
            raise BuildLocked(f"{self.name} is being built or replaced right now ({holder})",
                              "verify or run it when that is done")
        raise BuildLocked(f"another build of {self.name}, or a verify or run of it, is going ({holder})",
                          "wait for it to finish, then run the build again (it will be a no-op if it succeeded)")


class CacheLock(_FileLock):
    """out/.locks/cache-<name>[-<entry>].lock: one shared cache (shared=True: beside other builds, not beside
    gc), or one entry of it exclusively; waits, saying so, while it is taken."""

    def __init__(self, out_root: Path, name: str, say: Optional[Callable[[str], None]] = None, entry: str = "",
                 shared: bool = False):
        super().__init__(out_root / ".locks" / f"cache-{name}{'-' + entry if entry else ''}.lock", shared)
        self.name, self.entry, self.say = name, entry, say

    def _busy(self, holder: str) -> None:
        if self.say:
            what = f" ({self.entry})" if self.entry else ""
            self.say(f"waiting for the shared {self.name} cache{what} ({holder} is using it)")


def hold_log(lock: Path) -> Path:
    """Where a MachineBuildLock logs its holds: LOCK.log beside the lock file."""
    return lock.with_name(lock.name + ".log")


class MachineBuildLock(_FileLock):
    """$PMEM_IMAGE_BUILD_LOCK: one file that every pmem-image process given it takes exclusively for the heavy
    part of a build (staging, kernel compile, mkosi, exports), so that builds on one machine (CI jobs, --jobs
    workers, several terminals) run one at a time while boots and everything else go on beside them."""

    def __init__(self, path: Path, say: Callable[[str], None], what: str = ""):
        super().__init__(path)
        self.say, self.what = say, what

    def _busy(self, holder: str) -> None:
        self.say(f"waiting for the build lock {self.path} ({holder} is building)")

    def __enter__(self):
        self.asked = time.monotonic()
        super().__enter__()
        self.taken = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        waited, held = self.taken - self.asked, time.monotonic() - self.taken
        self.say(f"build lock: waited {waited:.0f}s, held {held:.0f}s")
        # What the machine's builds cost and how long they queued, for whoever shares the lock (CI prints it):
        # one JSON line per hold beside the lock, appended (O_APPEND: concurrent holders' lines do not mix).
        line = json.dumps({"what": self.what, "pid": os.getpid(), "waited": round(waited, 1), "held": round(held, 1),
                           "ended": time.strftime("%H:%M:%S")}) + "\n"
        with contextlib.suppress(OSError):
            descriptor = os.open(hold_log(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.write(descriptor, line.encode())
            finally:
                os.close(descriptor)
