"""Byte sizes in the kernel's binary K/M/G/T notation (memparse), both ways."""

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

_UNITS = {"K": KIB, "M": MIB, "G": GIB, "T": TIB}
_SIZE_RE = re.compile(r"^(?P<number>[0-9]+)(?P<unit>[KMGTkmgt])?$")
SIZE_PATTERN = r"^[0-9]+[KMGTkmgt]?$"


def round_up(value: int, unit: int) -> int:
    """value rounded up to a whole multiple of unit."""
    return -(-value // unit) * unit


def parse_size(text: object) -> int:
    """Parse "1G", "512M", "0" into bytes; a bare number other than 0 needs a unit.

    A bare number is ambiguous (the kernel reads bytes, QEMU's -m reads MiB), so only 0 may
    go without a unit.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"expected a size like 1G or 512M, got {text!r}")
    raw = str(text).strip()
    match = _SIZE_RE.match(raw)
    if not match:
        raise ValueError(f"{raw!r} is not a size; write a whole number with K, M, G or T (binary units), e.g. 1G or 512M")
    number = int(match["number"])
    unit = match["unit"]
    if unit is None and number != 0:
        raise ValueError(f"{raw!r} has no unit; write e.g. {number}M or {number}G (K/M/G/T are binary units)")
    value = number * (_UNITS[unit.upper()] if unit else 1)
    if value >= 2**52:
        raise ValueError(f"{raw!r} is larger than x86-64 physical addressing allows (4 PiB)")
    return value


def format_size(value: int) -> str:
    """The shortest exact kernel notation: 1073741824 -> "1G", 1536 MiB -> "1536M"."""
    if value == 0:
        return "0"
    for unit in ("T", "G", "M", "K"):
        if value % _UNITS[unit] == 0:
            return f"{value // _UNITS[unit]}{unit}"
    return str(value)


def human_size(value: int) -> str:
    """A readable (possibly rounded) size for tables: 1.5 GiB, 16 MiB."""
    for unit, factor in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if value >= factor:
            number = value / factor
            return f"{number:.0f} {unit}" if number == int(number) else f"{number:.2f} {unit}"
    return f"{value} B"


# A size field of the profile: written as 1G / 512M, kept as bytes, shown in the kernel's notation.
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema({"type": "string", "pattern": SIZE_PATTERN, "examples": ["1G", "512M"]}),
]
