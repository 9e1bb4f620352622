"""pmem-image diff: whether two builds are identical and, if not, where they differ (pure over what each
build directory records: manifest.json's artifact hashes, mkosi's package manifest, contents.json)."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ..profile.errors import UsageError
from .contents import CONTENTS

ARTIFACT_SUFFIXES = (".raw", ".vmlinuz", ".initrd", ".qcow2", ".vmdk", ".ova", ".vhd", ".vhdx", ".tar.gz")


@dataclass
class Build:
    """What one side of a diff recorded (missing parts are None: a contents.json alone has no artifacts)."""
    label: str
    artifacts: Optional[dict[str, str]]        # file name -> sha256
    packages: Optional[dict[str, str]]         # package -> version
    contents: Optional[dict]


@dataclass
class Difference:
    identical: bool
    artifacts: dict[str, list] = field(default_factory=dict)     # name -> [sha256 A, sha256 B]
    packages: dict[str, list] = field(default_factory=dict)      # name -> [version A, version B]
    files: dict[str, list] = field(default_factory=dict)         # path -> [entry A, entry B]
    partitions: dict[str, list] = field(default_factory=dict)    # field -> [value A, value B]
    not_compared: list[str] = field(default_factory=list)


def _json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_build(path: Path) -> Build:
    """An out/NAME directory, or a contents.json file."""
    if path.is_file():
        contents = _json(path)
        if contents is None or "files" not in contents:
            raise UsageError(f"{path} is not a contents.json", "give two build directories or two contents.json files")
        return Build(str(path), None, None, contents)
    manifest = _json(path / "manifest.json")
    if manifest is None:
        raise UsageError(f"{path} holds no build (no manifest.json)", "give two out/NAME directories")
    artifacts = {f["name"]: f["sha256"] for f in manifest.get("files", []) if f["name"].endswith(ARTIFACT_SUFFIXES)}
    packages = _json(path / f"{manifest['name']}.manifest")
    return Build(str(path), artifacts,
                 {p["name"]: p["version"] for p in packages["packages"]} if packages else None,
                 _json(path / CONTENTS))


def _changed(a: dict, b: dict) -> dict[str, list]:
    return {key: [a.get(key), b.get(key)] for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)}


def _partition_fields(contents: dict) -> dict:
    """The partition table and filesystems as flat 'where.field' -> value pairs."""
    table = contents.get("partition_table") or {}
    flat = {f"table.{k}": v for k, v in table.items() if k != "partitions"}
    for partition in table.get("partitions", []):
        flat |= {f"partition{partition['node']}.{k}": v for k, v in partition.items() if k != "node"}
    for node, fs in (contents.get("filesystems") or {}).items():
        flat |= {f"partition{node}.fs.{k}": v for k, v in fs.items()}
    return flat


def compare(a: Build, b: Build) -> Difference:
    result = Difference(identical=True)
    if a.artifacts is not None and b.artifacts is not None:
        result.artifacts = _changed(a.artifacts, b.artifacts)
    else:
        result.not_compared.append("artifacts (a contents.json has none)")
    if a.packages is not None and b.packages is not None:
        result.packages = _changed(a.packages, b.packages)
    else:
        result.not_compared.append("packages (no mkosi package manifest)")
    if a.contents is not None and b.contents is not None:
        files_a = {e["path"]: e for e in a.contents.get("files", [])}
        files_b = {e["path"]: e for e in b.contents.get("files", [])}
        result.files = _changed(files_a, files_b)
        result.partitions = _changed(_partition_fields(a.contents), _partition_fields(b.contents))
    else:
        result.not_compared.append("files and partitions (no contents.json: built before pmem-image recorded it)")
    result.identical = not (result.artifacts or result.packages or result.files or result.partitions)
    return result


def _describe_file(a: Optional[dict], b: Optional[dict]) -> str:
    if a is None:
        return "only in B"
    if b is None:
        return "only in A"
    return ", ".join(f"{key} {a.get(key)} -> {b.get(key)}" for key in sorted(set(a) | set(b))
                     if key != "path" and a.get(key) != b.get(key))


def difference_text(a: Build, b: Build, difference: Difference, limit: int = 40) -> str:
    lines = [f"A {a.label}", f"B {b.label}"]
    if difference.identical:
        lines.append("identical: " + ("every artifact has the same sha256" if a.artifacts is not None
                                       else "the same files and partitions"))
    for title, changes, show in (
            ("artifacts", difference.artifacts, lambda v: f"{(v[0] or 'absent')[:16]} -> {(v[1] or 'absent')[:16]}"),
            ("packages", difference.packages, lambda v: f"{v[0] or 'absent'} -> {v[1] or 'absent'}"),
            ("partitions", difference.partitions, lambda v: f"{v[0]} -> {v[1]}"),
            ("files", difference.files, lambda v: _describe_file(*v))):
        if changes:
            lines.append(f"{title} differ ({len(changes)}):")
            lines += [f"  {name}: {show(values)}" for name, values in list(changes.items())[:limit]]
            lines += [f"  ... and {len(changes) - limit} more"] if len(changes) > limit else []
    lines += [f"not compared: {what}" for what in difference.not_compared]
    return "\n".join(lines)


def difference_json(a: Build, b: Build, difference: Difference) -> dict:
    return {"a": a.label, "b": b.label, **asdict(difference)}
