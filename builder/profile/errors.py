"""User-facing errors: each says where (file, line, field), what, and what to do."""

import errno
from dataclasses import dataclass
from typing import Literal, Optional

Path_ = tuple[object, ...]


def dotted(path: Path_) -> str:
    """('pmem', 0, 'offset') -> 'pmem[0].offset'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


@dataclass(frozen=True)
class Problem:
    path: Path_
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"
    line: Optional[int] = None
    column: Optional[int] = None

    def located(self, line: Optional[int], column: Optional[int]) -> "Problem":
        return Problem(self.path, self.message, self.hint, self.severity, line, column)

    def format(self, filename: str) -> str:
        where = filename
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        prefix = "warning: " if self.severity == "warning" else ""
        field = f"{dotted(self.path)}: " if self.path else ""
        text = f"{where}: {prefix}{field}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def as_dict(self, filename: str) -> dict:
        return {
            "file": filename, "line": self.line, "column": self.column, "field": dotted(self.path),
            "severity": self.severity, "message": self.message, "hint": self.hint,
        }


# Exit codes, for people and CI alike (README "Exit codes"; --json output carries the same number).
EXIT_OK = 0            # success
EXIT_PROOF_FAILED = 1  # the image booted but failed its proof
EXIT_BAD_INPUT = 2     # a profile or the command's arguments are wrong: fix them
EXIT_TOOL_FAILED = 3   # the build or a tool failed (mkosi, QEMU, a kernel build, a missing tool)
EXIT_INTERNAL = 70     # a bug in pmem-image itself (EX_SOFTWARE); --debug shows the traceback
EXIT_INTERRUPTED = 130 # Ctrl-C, SIGTERM or SIGHUP; earlier outputs are unchanged


class PmemImageError(Exception):
    """An error the user can fix; the CLI prints it without a traceback. By default a tool or build failure."""

    exit_code = EXIT_TOOL_FAILED

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


class ProfileError(PmemImageError):
    """A profile that does not validate: every problem found in it, in file order."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, filename: str, problems: list[Problem]):
        self.filename = filename
        self.problems = problems
        super().__init__("\n".join(p.format(filename) for p in problems))


class UsageError(PmemImageError):
    """The command was asked for something it cannot do as given (a path, a missing build, a privilege)."""

    exit_code = EXIT_BAD_INPUT


_OS_ERROR_HINTS = {
    errno.ENOSPC: "the filesystem is full: free space (pmem-image gc trims the shared caches) and run again",
    errno.EDQUOT: "the disk quota is used up: free space (pmem-image gc trims the shared caches) and run again",
    errno.EACCES: "no permission: builds and their out/ need root (sudo); a read-only user can use --out elsewhere",
    errno.EPERM: "not permitted: builds and their out/ need root (sudo)",
    errno.EROFS: "a read-only filesystem: give --out (or -o) a writable place",
}


def os_error_text(error: OSError) -> str:
    """A host-side file error (exit 3) in the user's words: what failed, on which path, what to do."""
    where = f" ({error.filename})" if error.filename else ""
    hint = _OS_ERROR_HINTS.get(error.errno or 0, "check that path, then run again")
    return f"{error.strerror or error}{where}\n  hint: {hint}"
