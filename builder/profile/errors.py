"""User-facing errors: each says where (file, line, field), what, and what to do."""

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


class PmemImageError(Exception):
    """An error the user can fix; the CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


class ProfileError(PmemImageError):
    """A profile that does not validate: every problem found in it, in file order."""

    exit_code = 2

    def __init__(self, filename: str, problems: list[Problem]):
        self.filename = filename
        self.problems = problems
        super().__init__("\n".join(p.format(filename) for p in problems))


class UsageError(PmemImageError):
    exit_code = 2
