"""What writes an image's bytes besides the plan and the rendered files: the pinned tools in the private
prefix (the exports' qemu-img, tar and gzip among them), the host tools that still take part (apt and dpkg,
which mkosi 24.3 runs to install packages), and pmem-image's own code that renders, builds and exports. The build key and the
manifest record all of it, so an output made by other tools or other code never counts as up to date,
and a binary cache never serves it for this build."""

import functools
import hashlib
import shutil
from pathlib import Path

from ..runner import Runner

_PACKAGE = Path(__file__).resolve().parents[1]
# The parts of builder/ whose code decides bytes: the plan and its knowledge, the renderer and its
# templates, the build and export steps, the guest programs. cli/ and verify/ only read outputs.
BYTE_WRITING_CODE = ("knowledge", "plan", "render", "build", "native")
HOST_TOOLS = {"qemu-img": ["qemu-img", "--version"], "apt": ["apt-get", "--version"],
              "dpkg": ["dpkg", "--version"], "tar": ["tar", "--version"], "gzip": ["gzip", "--version"]}
# bootstrap unpacks the exports' tools (qemu-utils, tar, gzip) into the prefix's exports/, beside bin/, which
# is mkosi's search path: mkosi's own steps see the tar and gzip they always saw. Without a prefix (the tests'
# stand-in tools) the host's own are run, and recorded here.


def code_sha256(package: Path = _PACKAGE) -> str:
    """sha256 over the byte-writing code's files (name and content), in a fixed order."""
    return _installed_code_sha256() if package == _PACKAGE else _code_sha256(package)


@functools.cache
def _installed_code_sha256() -> str:
    return _code_sha256(_PACKAGE)


def _code_sha256(package: Path) -> str:
    digest = hashlib.sha256()
    for part in BYTE_WRITING_CODE:
        root = package / part
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*")
                                                     if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            digest.update(f"{path.relative_to(package)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def pinned_tools(tools_bin: Path | None) -> dict[str, str]:
    """The packages bootstrap unpacked into the prefix ({package: version}, from .tools/versions.tsv)."""
    listing = tools_bin.parent / "versions.tsv" if tools_bin else None
    if listing is None or not listing.is_file():
        return {}
    return dict(line.split("\t", 1) for line in listing.read_text().splitlines() if "\t" in line)


@functools.cache
def _host_tool_version(name: str) -> str:
    argv = HOST_TOOLS[name]
    if shutil.which(argv[0]) is None:
        return "missing"
    result = Runner().query(argv)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].strip() if first else "unknown"


def export_tool(name: str, tools_bin: Path | None) -> str:
    """The prefix's copy of an export tool when bootstrap unpacked one, else the host's (found on PATH)."""
    pinned = tools_bin.parent / "exports" / name if tools_bin else None
    return str(pinned) if pinned is not None and pinned.is_file() else name


def toolchain(tools_bin: Path | None) -> dict[str, str]:
    """Every tool version that can change the bytes: the pinned prefix and the host tools (an export tool
    the prefix has is recorded by its package's version, and not again as the host's)."""
    host = [name for name in HOST_TOOLS if export_tool(name, tools_bin) == name]
    return {**pinned_tools(tools_bin), **{name: _host_tool_version(name) for name in host}}


def toolchain_identity(tools_bin: Path | None) -> str:
    """One line for the build key: the toolchain and the byte-writing code."""
    tools = toolchain(tools_bin)
    return "\n".join([*(f"{name}={version}" for name, version in sorted(tools.items())), f"code={code_sha256()}"])
