"""What a built image holds, listed so two builds compare without mounting anything (contents.json): the
partition table with its UUIDs, each partition's filesystem identity, and every file with type, mode,
owner, size and sha256 (from the listing mkosi.finalize wrote of the final tree). Also the one fix-up the
raw disk needs to be bit-identical between builds (dosfstools 4.2 stamps the FAT volume label with the
wall clock; every other field follows SOURCE_DATE_EPOCH or the seed)."""

import json
import struct
import time
from pathlib import Path

from ..profile.errors import PmemImageError
from ..runner import Runner

CONTENTS = "contents.json"
LISTING, HASHES = "contents.tsv", "contents.sha256"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
_TYPES = {"f": "file", "d": "directory", "l": "symlink", "c": "char", "b": "block", "p": "fifo", "s": "socket"}


def partition_table(raw: Path, runner: Runner) -> dict:
    """sfdisk's view of the disk (the host path left out, so two builds' tables compare equal)."""
    listed = runner.query(["sfdisk", "--json", str(raw)])
    if listed.returncode != 0:
        raise PmemImageError(f"sfdisk cannot read the partition table of {raw.name}: {listed.stderr.strip()}",
                             "see build.log; mkosi made no usable disk")
    table = json.loads(listed.stdout)["partitiontable"]
    table.pop("device", None)
    for partition in table.get("partitions", []):
        partition["node"] = partition["node"].removeprefix(str(raw))   # "1", "2", ...
    return table


def filesystems(raw: Path, table: dict, runner: Runner) -> dict[str, dict]:
    """Per partition number: the filesystem blkid finds there (TYPE, UUID, LABEL, VERSION)."""
    found = {}
    sector = table.get("sectorsize", 512)
    for partition in table.get("partitions", []):
        probe = runner.query(["blkid", "-p", "-o", "export", "--offset", str(partition["start"] * sector),
                              "--size", str(partition["size"] * sector), str(raw)])
        fields = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
        found[partition["node"]] = {k: v for k, v in fields.items() if k in ("TYPE", "UUID", "LABEL", "VERSION")}
    return found


def _fat_stamp(epoch: int) -> tuple[int, int]:
    t = time.gmtime(epoch)
    return ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday, (t.tm_hour << 11) | (t.tm_min << 5) | t.tm_sec // 2


def clamp_fat_label(raw: Path, table: dict, epoch: int) -> int:
    """Give the ESP's FAT32 volume-label entry (root directory, attribute 0x08) the SOURCE_DATE_EPOCH time
    instead of mkfs.fat's wall clock; returns how many entries were changed."""
    sector = table.get("sectorsize", 512)
    date, clock = _fat_stamp(epoch)
    changed = 0
    with open(raw, "r+b") as disk:
        for partition in (p for p in table.get("partitions", []) if p["type"].upper() == ESP_TYPE):
            base = partition["start"] * sector
            disk.seek(base)
            boot = disk.read(512)
            bps, spc, reserved, fats = struct.unpack_from("<HBHB", boot, 11)
            fat16_size, fat32_size, root_cluster = struct.unpack_from("<H", boot, 22)[0], *struct.unpack_from(
                "<I4xI", boot, 36)
            if fat16_size or not bps or not spc:      # FAT32 only: what systemd-repart makes an ESP
                continue
            root = base + (reserved + fats * fat32_size) * bps + (root_cluster - 2) * spc * bps
            disk.seek(root)
            cluster = bytearray(disk.read(spc * bps))
            for offset in range(0, len(cluster), 32):
                if cluster[offset] == 0:
                    break
                if cluster[offset + 11] == 0x08 and cluster[offset] != 0xE5:
                    struct.pack_into("<BHHH", cluster, offset + 13, 0, clock, date, date)   # created, accessed
                    struct.pack_into("<HH", cluster, offset + 22, clock, date)              # modified
                    changed += 1
            disk.seek(root)
            disk.write(cluster)
    return changed


def file_listing(result: Path) -> list[dict]:
    """mkosi.finalize's listing (NUL-separated 'type mode uid gid size target path' and sha256sum --zero
    lines) as one sorted list of entries."""
    hashes = {}
    for line in (result / HASHES).read_bytes().split(b"\0"):
        if line:
            digest, _, path = line.decode(errors="surrogateescape").partition("  ")
            hashes[path.removeprefix("./")] = digest
    entries = []
    for record in (result / LISTING).read_bytes().split(b"\0"):
        if not record:
            continue
        kind, mode, uid, gid, size, target, path = record.decode(errors="surrogateescape").split("\t", 6)
        entry: dict[str, object] = {"path": "/" + path, "type": _TYPES.get(kind, kind), "mode": mode, "owner": f"{uid}:{gid}"}
        if kind == "f":
            entry |= {"size": int(size), "sha256": hashes.get(path)}
        elif kind == "l":
            entry["target"] = target
        entries.append(entry)
    return sorted(entries, key=lambda e: e["path"])


def write_contents(result: Path, raw: Path, table: dict, runner: Runner) -> dict:
    """contents.json beside the image (the listing files are folded into it and removed); table: the
    disk's partition_table()."""
    contents = {"partition_table": table, "filesystems": filesystems(raw, table, runner),
                "files": file_listing(result) if (result / LISTING).exists() else []}
    (result / CONTENTS).write_text(json.dumps(contents, indent=1, sort_keys=True) + "\n")
    for name in (LISTING, HASHES):
        (result / name).unlink(missing_ok=True)
    return contents
