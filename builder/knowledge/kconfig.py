"""Kconfig fragments, their resolution for a profile, and the check that requested options survived.

Pure functions over texts, plus reading the fragments shipped as package data
(kernel-fragments/, installed as builder.knowledge.fragments); running kbuild is the build stage's.
"""

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional

from ..profile.errors import PmemImageError
from .kernels import KernelVersion, parse_version

# Where a fragment applies: 'always' (every kernel, the distro's included), 'filesystem=X' (when a
# region or the root uses X), 'backend=X' (the plan's pmem backend), 'source' (kernels pmem-image
# builds), 'named' (only when a profile lists it); 'source backend=X': both must hold.
APPLIES = re.compile(r"^(always|named|((source|filesystem=(ext4|xfs|btrfs)|backend=[a-z0-9-]+)( |$))+)$")
FRAGMENTS_PACKAGE = "builder.knowledge.fragments"
OPTION = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
NOT_SET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")


class FragmentError(PmemImageError, ValueError):
    """A fragment file that does not parse, or no fragments at all (a broken installation)."""


@dataclass(frozen=True)
class Fragment:
    name: str
    description: str
    minimum: KernelVersion
    below: Optional[KernelVersion]
    applies: str
    options: tuple[tuple[str, str], ...]   # (SYMBOL, value) with value 'n' for "is not set"

    def covers(self, version: KernelVersion) -> bool:
        return self.minimum <= version and (self.below is None or version < self.below)


def parse_fragment(name: str, text: str) -> Fragment:
    """A fragment file: '# kernels: >=A [<B]' and '# applies: ...' headers, then CONFIG_ lines."""
    description, minimum, below, applies, options = "", None, None, None, []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("# pmem-image kernel fragment:"):
            description = line.split(":", 1)[1].strip()
        elif line.startswith("# kernels:"):
            for bound in line.split(":", 1)[1].split():
                if bound.startswith(">="):
                    minimum = parse_version(bound[2:])
                elif bound.startswith("<"):
                    below = parse_version(bound[1:])
                else:
                    raise FragmentError(f"{name}.config:{number}: kernel bound {bound!r} is not >=X or <Y")
        elif line.startswith("# applies:"):
            applies = line.split(":", 1)[1].strip()
            if not APPLIES.match(applies):
                raise FragmentError(f"{name}.config:{number}: applies {applies!r} is not always, source, named, "
                                    "filesystem=ext4|xfs|btrfs or backend=NAME")
        elif match := OPTION.match(line):
            options.append((match[1], match[2]))
        elif match := NOT_SET.match(line):
            options.append((match[1], "n"))
        elif line and not line.startswith("#"):
            raise FragmentError(f"{name}.config:{number}: {line!r} is not a CONFIG_ line")
    if minimum is None or applies is None:
        raise FragmentError(f"{name}.config: needs '# kernels: >=X.Y' and '# applies: ...' header lines")
    return Fragment(name, description, minimum, below, applies, tuple(options))


def load_fragments(directory: Path) -> dict[str, Fragment]:
    fragments = {path.stem: parse_fragment(path.stem, path.read_text()) for path in sorted(directory.glob("*.config"))}
    if not fragments:
        # An empty set would make every kernel-option check pass without looking at anything.
        raise FragmentError(f"no kernel fragments (*.config) in {directory}")
    return fragments


def bundled_fragments_dir() -> Path:
    """The shipped fragments: kernel-fragments/ in a checkout, package data in an installed wheel."""
    return Path(str(resources.files(FRAGMENTS_PACKAGE)))


def resolve_fragments(available: dict[str, Fragment], version: KernelVersion, filesystems: Iterable[str],
                      named: Iterable[str], built_from_source: bool, backend: str) -> list[Fragment]:
    """The fragments a kernel gets, in a stable order: automatic ones by name, then named ones as listed."""
    wanted = {"always", f"backend={backend}", *(f"filesystem={f}" for f in filesystems),
              *(["source"] if built_from_source else [])}
    chosen = [fragment for fragment in available.values()
              if fragment.covers(version) and all(term in wanted for term in fragment.applies.split())]
    for name in named:
        fragment = available[name]
        if fragment not in chosen:
            chosen.append(fragment)
    return chosen


def required_options(fragments: Iterable[Fragment]) -> dict[str, str]:
    options: dict[str, str] = {}
    for fragment in fragments:
        options.update(fragment.options)
    return options


def options_text(options: dict[str, str]) -> str:
    """Options as one fragment file for merge_config.sh."""
    lines = [f"# CONFIG_{symbol} is not set" if value == "n" else f"CONFIG_{symbol}={value}"
             for symbol, value in options.items()]
    return "\n".join(lines) + "\n"


def parse_dotconfig(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if match := OPTION.match(line):
            values[match[1]] = match[2]
        elif match := NOT_SET.match(line):
            values[match[1]] = "n"
    return values


def satisfied(wanted: str, got: str, modules_ok: bool) -> bool:
    if wanted == "y":
        return got == "y" or (modules_ok and got == "m")
    if wanted == "m":
        return got in ("m", "y")
    return got == wanted


@dataclass
class KconfigSymbol:
    name: str
    kind: str = ""
    has_prompt: bool = False
    depends: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


_CONFIG_START = re.compile(r"^\s*(menu)?config\s+([A-Za-z0-9_]+)\s*$")
_BLOCK_END = re.compile(r"^\s*(menu)?config\s|^\s*(endmenu|menu\s|choice|endchoice|if\s|endif|source\s|comment\s)")
_TYPE = re.compile(r"^\s*(bool|tristate|string|hex|int|def_bool|def_tristate)\b\s*(\".*\")?")


def index_kconfig(files: dict[str, str]) -> dict[str, KconfigSymbol]:
    """Symbol -> type, prompt and `depends on` lines, from Kconfig file texts (path -> text)."""
    symbols: dict[str, KconfigSymbol] = {}
    for path, text in files.items():
        current: Optional[KconfigSymbol] = None
        for line in text.splitlines():
            if match := _CONFIG_START.match(line):
                current = symbols.setdefault(match[2], KconfigSymbol(match[2]))
                current.files.append(path)
                continue
            if current is None:
                continue
            if _BLOCK_END.match(line):
                current = None
                continue
            if match := _TYPE.match(line):
                current.kind = current.kind or match[1].replace("def_", "")
                current.has_prompt = current.has_prompt or bool(match[2])
            elif re.match(r"^\s*prompt\s", line):
                current.has_prompt = True
            elif match := re.match(r"^\s*depends on\s+(.*?)\s*$", line):
                current.depends.append(match[1])
    return symbols


def _off_symbols(expression: str, config: dict[str, str]) -> list[str]:
    """Symbols a `depends on` expression names positively that are off in the config."""
    names = re.findall(r"(!?)\b([A-Z][A-Z0-9_]+)\b", expression)
    return [name for negated, name in names if not negated and config.get(name, "n") == "n"]


@dataclass(frozen=True)
class LostOption:
    symbol: str
    wanted: str
    got: str
    why: str

    def format(self) -> str:
        return f"CONFIG_{self.symbol}: wanted {self.wanted}, got {self.got}: {self.why}"


def lost_options(required: dict[str, str], config: dict[str, str], index: Optional[dict[str, KconfigSymbol]] = None,
                 modules_ok: bool = False) -> list[LostOption]:
    """Every requested option the final .config does not have, with the reason where it can be told."""
    lost = []
    for symbol, wanted in required.items():
        got = config.get(symbol, "n")
        if satisfied(wanted, got, modules_ok):
            continue
        why = "not set in this kernel's configuration"
        if index is not None:
            entry = index.get(symbol)
            if entry is None:
                why = "this kernel's Kconfig has no such symbol (not yet added, removed or renamed)"
            else:
                blockers = sorted({s for d in entry.depends for s in _off_symbols(d, config)})
                if blockers:
                    why = f"its dependencies are off: {', '.join(blockers)} (depends on {' && '.join(entry.depends)})"
                elif not entry.has_prompt:
                    why = "it has no prompt: only other options select or default it"
                else:
                    why = f"dropped by kconfig (depends on {' && '.join(entry.depends) or 'nothing'})"
        lost.append(LostOption(symbol, wanted, got, why))
    return lost
