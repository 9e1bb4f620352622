"""Proof rows of one region by namespace mode (pure): the namespace ndctl made, then what the mode promises.
fsdax: mounted with DAX, MAP_SYNC, stores read back; sector: mounted through the BTT without DAX; raw: the
bare block device without DAX; devdax: daxctl's device, stores read back through a second mapping."""

import json
from typing import Optional

from ..plan.backends import ProofExpectations
from ..plan.model import PlannedRegion
from ..profile.sizes import human_size
from .pmdk_proof import devdax_pmdk_checks, mount_pmdk_checks
from .result import Check

_CPU_FLUSH = ("clwb", "clflushopt", "clflush")


def _namespace_at(report: dict, start: int) -> Optional[dict]:
    for namespace in report.get("ndctl_namespaces") or []:
        resource = namespace.get("resource")
        if resource is not None and int(str(resource), 16) == start:
            return namespace
    return None


def _device_of(namespace: dict) -> Optional[str]:
    """The /dev name ndctl lists for a namespace: blockdev, or the device DAX's chardev."""
    if namespace.get("blockdev"):
        return namespace["blockdev"]
    if namespace.get("chardev"):
        return namespace["chardev"]
    devices = (namespace.get("daxregion") or {}).get("devices") or []
    return devices[0].get("chardev") if devices else None


def namespace_check(region: PlannedRegion, report: dict, labelled: bool = False) -> Check:
    """The namespace at the region's address has the whole region, the planned mode and map, and the device;
    labelled (NVDIMMs): a label describes it (it has a uuid), so it outlives the boot."""
    dev = f"/dev/{region.device}"
    if region.start is None:
        return Check(f"{dev} namespace", False, f"there is no NVDIMM region number {region.number} to hold it")
    namespace = _namespace_at(report, region.start)
    if namespace is None:
        listed = [f"{n.get('dev')} at {n.get('resource')}" for n in report.get("ndctl_namespaces") or []]
        return Check(f"{dev} namespace", False, f"no namespace starts at {region.start:#x}", listed)
    wanted = (region.mode, region.map or "-", region.device, region.size, labelled)
    found: tuple = (namespace.get("mode"), namespace.get("map") or "-", _device_of(namespace), namespace.get("raw_size"),
             labelled and bool(namespace.get("uuid")))
    usable = namespace.get("size")
    detail = (f"{namespace.get('dev')} {found[0]}, map {found[1]}, /dev/{found[2]}, "
              f"{human_size(found[3] or 0)} at {region.start:#x}"
              + (f" ({human_size(usable)} usable)" if isinstance(usable, int) and usable != found[3] else "")
              + (f", label uuid {namespace.get('uuid')}" if found[4] else ""))
    if found != wanted:
        detail += (f"; planned {region.mode}, map {region.map or '-'}, {dev}, {human_size(region.size)}"
                   + (", described by a label" if labelled and not found[4] else ""))
    setup = [json.dumps(s) for s in report.get("namespace_setup") or [] if s.get("device") == region.device]
    return Check(f"{dev} namespace", found == wanted, detail, setup if found != wanted else [])


def _block_device(region: PlannedRegion, report: dict) -> Optional[dict]:
    return next((d for d in report.get("devices", []) if d.get("name") == region.device), None)


def _mount_of(region: PlannedRegion, report: dict) -> tuple[Optional[dict], Check]:
    dev = f"/dev/{region.device}"
    mount = next((m for m in report.get("mounts", []) if m.get("device") == dev), None)
    if mount is None or mount.get("mountpoint") != region.mountpoint or mount.get("fstype") != region.filesystem:
        found = f"{mount['device']} on {mount['mountpoint']} ({mount['fstype']})" if mount else "not mounted"
        return None, Check(f"{dev} mounted", False, f"expected {region.filesystem} on {region.mountpoint}; found {found}")
    return mount, Check(f"{dev} mounted", True, f"{region.filesystem} on {region.mountpoint}")


def _dax_state(region: PlannedRegion, report: dict, mount: dict) -> tuple[bool, str, list[str]]:
    """Whether the mount really uses DAX, in words, with the kernel's own complaint as evidence."""
    dax_options = [o for o in mount.get("options", []) if o == "dax" or o.startswith("dax=")]
    turned_off = [l for l in report.get("dax_messages", []) if "Turning off DAX" in l and region.device in l]
    flush = mount.get("flush_test")
    statx_off = isinstance(flush, dict) and flush.get("statx_dax") is False
    dax_on = bool(dax_options) and dax_options[-1] not in ("dax=never", "dax=inode") and not turned_off and not statx_off
    words = (f"mount options {','.join(dax_options) or 'have no dax'}"
             + ("; statx says the file is not DAX" if statx_off else "")
             + ("; the kernel turned DAX off" if turned_off else ""))
    return dax_on, words, turned_off


def _stores_check(dev: str, flush: dict) -> Check:
    # What this shows: every round's stores reached the file through a CPU flush path (QEMU's -cpu max/host
    # always offers one, so msync here means the path was not exercised). Not that lines were flushed
    # (caches are coherent) nor durability (the pmem is DRAM).
    best = max((r for r in flush["results"] if r["method"] not in ("memcpy",)), key=lambda r: r["gbps"], default=None)
    selected = flush.get("selected")
    cpu_path = selected in _CPU_FLUSH
    return Check(f"{dev} stores reach the file", flush.get("verification") == "ok" and cpu_path,
                 f"read-back {flush.get('verification')} after every round; flush path {selected}"
                 + ("" if cpu_path else " (no CPU flush instruction was used)")
                 + (f"; best {best['method']} {best['gbps']:.2f} GB/s" if best else ""))


def _msync_stores_check(dev: str, flush: dict) -> Check:
    """Without MAP_SYNC (virtio-pmem) stores are made durable by msync, which the guest passes to the host:
    the stores flushed that way must read back."""
    synced = next((r for r in flush["results"] if r["method"] == "msync"), None)
    ok = flush.get("verification") == "ok" and synced is not None and synced.get("verified") is True
    return Check(f"{dev} stores reach the file", ok,
                 f"read-back {flush.get('verification')} after every round; msync "
                 + (f"{synced['gbps']:.2f} GB/s, verified {synced.get('verified')}" if synced else "not run")
                 + " (the flush this backend makes durable)")


def _fsdax_checks(region: PlannedRegion, report: dict, expect: ProofExpectations, pmdk: bool) -> list[Check]:
    dev = f"/dev/{region.device}"
    mount, mounted = _mount_of(region, report)
    if mount is None:
        return [mounted]
    dax_on, words, turned_off = _dax_state(region, report, mount)
    checks = [mounted, Check(f"{dev} DAX active", dax_on, words, turned_off)]
    flush = mount.get("flush_test")
    if not isinstance(flush, dict) or "results" not in flush:
        return checks + [Check(f"{dev} MAP_SYNC", False, f"no flush test result ({json.dumps(flush)[:200]})")]
    accepted = flush.get("map_sync") is True
    seen = "MAP_SYNC accepted" if accepted else f"MAP_SYNC refused: {flush.get('map_sync_error')}"
    checks.append(Check(f"{dev} MAP_SYNC", accepted == expect.map_sync,
                        seen + ("" if expect.map_sync else " (expected: refused on this backend or kernel)")))
    checks.append(_stores_check(dev, flush) if expect.cpu_flush_durable else _msync_stores_check(dev, flush))
    return checks + (mount_pmdk_checks(dev, mount, expect.cpu_flush_durable) if pmdk else [])


def _sector_checks(region: PlannedRegion, report: dict) -> list[Check]:
    """Sector mode is a BTT block device: a filesystem on it works, without DAX (that is the mode, not a fault)."""
    dev = f"/dev/{region.device}"
    mount, mounted = _mount_of(region, report)
    if mount is None:
        return [mounted]
    dax_on, words, _ = _dax_state(region, report, mount)
    flush = mount.get("flush_test")
    refused = isinstance(flush, dict) and flush.get("map_sync") is False
    checks = [mounted, Check(f"{dev} without DAX (sector mode)", not dax_on and refused,
                             f"{words}; MAP_SYNC {'refused' if refused else 'not refused'}: the BTT stands "
                             "between the filesystem and the pmem, as sector mode means")]
    if isinstance(flush, dict) and "results" in flush:
        checks.append(_stores_check(dev, flush))
    return checks


def _raw_checks(region: PlannedRegion, report: dict) -> list[Check]:
    dev = f"/dev/{region.device}"
    device = _block_device(region, report)
    capable = None if device is None else device.get("dax_capable")
    return [Check(f"{dev} raw block device without DAX", device is not None and capable is False,
                  "no such block device" if device is None else
                  f"{human_size(device.get('size', 0))} block device; DAX "
                  f"{'not supported (no struct pages), as raw mode means' if capable is False else 'supported: not raw'}")]


def _devdax_checks(region: PlannedRegion, report: dict, pmdk: bool) -> list[Check]:
    dev = f"/dev/{region.device}"
    found = next((d for d in report.get("dax_devices") or [] if d.get("name") == region.device), None)
    if found is None:
        names = [d.get("name", "?") for d in report.get("dax_devices") or []]
        return [Check(f"{dev} device DAX", False, f"no {dev} in the guest", names)]
    daxctl = found.get("daxctl") or {}
    size, align = daxctl.get("size"), daxctl.get("align")
    listed = daxctl.get("chardev") == region.device and isinstance(size, int) and 0 < size <= region.size
    aligned = isinstance(align, int) and align == region.align
    checks = [Check(f"{dev} device DAX", listed and aligned,
                    f"daxctl lists {daxctl.get('chardev')}: {human_size(size or 0)}, align {human_size(align or 0)}"
                    + ("" if aligned else f"; planned align {human_size(region.align or 0)}")
                    if daxctl else "daxctl does not list it")]
    flush = found.get("flush_test") or {}
    checks.append(Check(f"{dev} stores read back", flush.get("verification") == "ok" and flush.get("method") in _CPU_FLUSH,
                        f"{human_size(flush.get('size') or 0)} stored with {flush.get('method')} (MAP_SYNC "
                        f"{'accepted' if flush.get('map_sync') else 'refused'}), read back through a second mapping: "
                        f"{flush.get('verification') or flush.get('error', 'no result')}"))
    return checks + (devdax_pmdk_checks(dev, found.get("pmdk")) if pmdk else [])


def mode_checks(region: PlannedRegion, report: dict, expect: ProofExpectations, pmdk: bool) -> list[Check]:
    """Rows after the namespace row, for what the region's mode promises."""
    if region.mode == "devdax":
        return _devdax_checks(region, report, pmdk)
    if region.mode == "raw":
        return _raw_checks(region, report)
    if region.mountpoint is None:
        device = _block_device(region, report)
        return [Check(f"/dev/{region.device} block device", device is not None,
                      f"{human_size(device.get('size', 0))}, no filesystem planned" if device else "no such block device")]
    if region.mode == "sector":
        return _sector_checks(region, report)
    return _fsdax_checks(region, report, expect, pmdk)
