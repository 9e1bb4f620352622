"""The cxl backend's proof rows, judged on what `cxl list` showed in the guest (the report's `cxl`): the devices
by serial number with their persistent capacity, the host bridges with their root ports, one root decoder (fixed
memory window) a region, and each region committed in its window with the planned size, ways, granularity and
devices in their positions, as pmem-cxl-regions made it (pure)."""

from typing import Optional

from ..plan.backends.cxl import devices, window_bridges
from ..plan.model import Plan
from .result import Check


def _number(value: object) -> Optional[int]:
    """cxl list prints sizes and addresses as numbers (or hex strings with -u)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.split()[0], 0)
        except ValueError:
            return None
    return None


def _hex(value: Optional[int]) -> str:
    return "?" if value is None else f"{value:#x}"


def _memdev_check(plan: Plan, cxl: dict) -> tuple[Check, dict[str, int]]:
    """Every planned device, found by its serial number with the planned persistent capacity."""
    by_serial = {_number(m.get("serial")): m for m in cxl.get("memdevs", [])}
    wrong = []
    for device in devices(plan):
        found = by_serial.get(device.serial)
        if found is None:
            wrong.append(f"no memdev with serial {device.serial} (device {device.number})")
        elif _number(found.get("pmem_size")) != device.size:
            wrong.append(f"{found.get('memdev')} (serial {device.serial}): pmem_size {found.get('pmem_size')}, "
                         f"planned {device.size}")
    names = {str(m.get("memdev")): serial for serial, m in by_serial.items() if serial is not None}
    seen = ", ".join(f"{m.get('memdev')} serial {m.get('serial')} {m.get('pmem_size')} bytes pmem"
                     for m in cxl.get("memdevs", []))
    count = len(devices(plan))
    return Check("CXL memdevs", not wrong, f"{count} type-3 device(s) with persistent capacity, as planned: {seen}"
                 if not wrong else f"{len(wrong)} of {count} planned device(s) wrong", wrong), names


def _port_check(plan: Plan, cxl: dict) -> Check:
    """One host bridge port (depth 1) per planned bridge, with as many root ports (dports) as devices behind it."""
    planned = [0] * plan.cxl.host_bridges if plan.cxl else []
    for device in devices(plan):
        planned[device.host_bridge] += 1
    bridges = sorted((len(p.get("dports") or []) for p in cxl.get("ports", []) if p.get("depth") == 1), reverse=True)
    ok = bridges == sorted(planned, reverse=True)
    return Check("CXL ports", ok, f"{len(bridges)} host bridge(s) with {bridges} root port(s); planned {planned}")


def _decoder_check(plan: Plan, cxl: dict) -> Check:
    """One root decoder a region (the window), the planned size, over the planned host bridges, pmem-capable."""
    decoders = {d.get("decoder"): d for d in cxl.get("root_decoders", [])}
    targets = len(window_bridges(plan))
    wrong = []
    for region in plan.regions:
        decoder = decoders.get(f"decoder0.{region.number}")
        if decoder is None:
            wrong.append(f"no root decoder decoder0.{region.number} for region {region.number}")
        elif (_number(decoder.get("size")), decoder.get("nr_targets"), decoder.get("pmem_capable")) != \
                (region.size, targets, True):
            wrong.append(f"decoder0.{region.number}: size {decoder.get('size')}, {decoder.get('nr_targets')} "
                         f"target(s), pmem_capable {decoder.get('pmem_capable')}; planned {region.size}, {targets}")
    ok = not wrong and len(decoders) == len(plan.regions)
    return Check("CXL decoders", ok, f"{len(decoders)} root decoder(s) (windows), one a region, {targets} host "
                 "bridge target(s) each" if ok else f"{len(decoders)} root decoder(s), {len(plan.regions)} planned",
                 wrong)


def _region_check(plan: Plan, cxl: dict, region_number: int, names: dict[str, int]) -> Check:
    """The region committed in its window: at the window's address, the planned size, ways, granularity, and the
    planned devices in their positions (the same bytes at the same addresses at every boot)."""
    name = f"CXL region {region_number}"
    setup = next((s for s in cxl.get("setup", []) if s.get("number") == region_number), None)
    if setup is None or setup.get("action") not in ("committed", "kept"):
        return Check(name, False, f"pmem-cxl-regions: {(setup or {}).get('action', 'no record')}",
                     [str(setup)] if setup else [])
    region = next((r for r in cxl.get("regions", []) if r.get("region") == setup.get("region")), None)
    decoder = next((d for d in cxl.get("root_decoders", []) if d.get("decoder") == setup.get("decoder")), None)
    if region is None or decoder is None:
        return Check(name, False, f"{setup.get('region')} on {setup.get('decoder')} is not in cxl list")
    planned = plan.regions[region_number]
    topology = plan.cxl
    positions = {m.get("position"): names.get(str(m.get("memdev"))) for m in region.get("mappings") or []}
    want_positions = {d.position: d.serial for d in devices(plan) if d.region == region_number}
    start, base = _number(region.get("resource")), _number(decoder.get("resource"))
    facts = {"committed": region.get("decode_state") == "commit", "type pmem": region.get("type") == "pmem",
             "at the window's start": start is not None and start == base,
             "planned size": _number(region.get("size")) == planned.size,
             "planned ways": topology is not None and region.get("interleave_ways") == topology.interleave_ways,
             "planned granularity": topology is not None
             and region.get("interleave_granularity") == topology.interleave_granularity,
             "devices in their positions": positions == want_positions}
    wrong = [what for what, ok in facts.items() if not ok]
    detail = (f"{region.get('region')} in {setup.get('decoder')} at {_hex(start)}, {region.get('size')} "
              f"bytes, {region.get('interleave_ways')} way(s) of {region.get('interleave_granularity')} bytes over "
              f"serials {[positions.get(p) for p in sorted(positions, key=lambda p: p or 0)]} ({setup.get('action')})")
    return Check(name, not wrong, detail if not wrong else f"not {', '.join(wrong)}: {detail}")


def cxl_checks(plan: Plan, report: dict) -> list[Check]:
    cxl = report.get("cxl")
    if not isinstance(cxl, dict):
        return [Check("CXL memdevs", False, "the report has no cxl listing (is the cxl tool in the image?)")]
    memdevs, names = _memdev_check(plan, cxl)
    return [memdevs, _port_check(plan, cxl), _decoder_check(plan, cxl),
            *(_region_check(plan, cxl, region.number, names) for region in plan.regions)]
