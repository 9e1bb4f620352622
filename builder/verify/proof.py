"""The boot proof, judged: the guest's JSON report against the plan's expectations (pure)."""

import json
import re
from dataclasses import asdict
from typing import Optional

from ..knowledge.kconfig import lost_options
from ..plan.backends import ProofExpectations, backend_for
from ..plan.model import Plan, PlannedRegion
from .cxl_proof import cxl_checks
from .modes_proof import mode_checks, namespace_check
from .persistence_proof import warm_reboot_checks
from .result import Check

BEGIN = "===PMEM-IMAGE-REPORT-BEGIN==="
END = "===PMEM-IMAGE-REPORT-END==="


def extract_report(text: str) -> Optional[dict]:
    """The last complete JSON report between the markers, or None."""
    found = None
    for match in re.finditer(re.escape(BEGIN) + r"\s*(.*?)\s*" + re.escape(END), text, re.S):
        body = "".join(line.strip() for line in match.group(1).splitlines())
        try:
            found = json.loads(body)
        except ValueError:
            continue
    return found


def _iomem_ranges(report: dict) -> list[tuple[int, int]]:
    ranges = []
    for line in report.get("iomem_pmem", []):
        match = re.match(r"\s*([0-9a-f]+)-([0-9a-f]+)\s*:", line)
        if match:
            ranges.append((int(match[1], 16), int(match[2], 16)))
    return ranges


def _region_checks(region: PlannedRegion, report: dict, expect: ProofExpectations, pmdk: bool) -> list[Check]:
    dev = f"/dev/{region.device}"
    checks = []
    if expect.legacy_e820 and region.start is not None:
        end = region.start + region.size - 1
        checks.append(Check(f"{dev} e820 range", (region.start, end) in _iomem_ranges(report),
                            f"expected Persistent Memory (legacy) at {region.start:#x}-{end:#x}",
                            report.get("iomem_pmem", []) + report.get("e820_user_pmem", [])))
    namespace = namespace_check(region, report, labelled=expect.nfit)
    checks.append(namespace)
    # Without the planned namespace the mode's own rows would only repeat that it is missing.
    return checks + (mode_checks(region, report, expect, pmdk) if namespace.passed else [])


def _ranges(lines: list[str], pattern: str) -> list[tuple[int, int, str]]:
    """(start, end inclusive, label) from /proc/iomem-style "a-b : label" or dmesg "[mem 0xa-0xb]" lines."""
    found = []
    for line in lines:
        if match := re.search(pattern, line):
            found.append((int(match[1], 16), int(match[2], 16), line.strip()))
    return found


def _kernel_clear_check(regions: list[PlannedRegion], report: dict) -> Check:
    """No region may hold the kernel image or the initrd: the kernel would be overwritten by mkfs, or KASLR
    (the UEFI stub's, which ignores memmap= on some kernels) placed it there."""
    kernel = _ranges(report.get("iomem_kernel") or [], r"^\s*([0-9a-f]+)-([0-9a-f]+)\s*:")
    initrd = _ranges(report.get("initrd") or [], r"\[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\]")
    if not kernel:
        return Check("pmem clear of kernel and initrd", False, "no 'Kernel code/data' ranges in /proc/iomem to "
                     "compare with", report.get("iomem_kernel") or [])
    clashes = [f"{r.device} {r.start:#x}-{r.start + r.size - 1:#x} overlaps {label}"
               for r in regions if r.start is not None for start, end, label in kernel + initrd
               if start <= r.start + r.size - 1 and r.start <= end]
    return Check("pmem clear of kernel and initrd", not clashes,
                 f"{len(kernel)} kernel range(s){' and the initrd' if initrd else ''} lie outside every region"
                 if not clashes else f"{len(clashes)} overlap(s)", clashes)


def _mounts_stay_checks(regions: list[PlannedRegion], report: dict) -> list[Check]:
    """Every planned mount still stands once the proof is done and udev has handled every device event: a
    mount stopped seconds after it was made (a namespace replaced under it) leaves an empty directory that
    takes writes meant for pmem."""
    at_end = report.get("mounts_at_end")
    return [Check(f"/dev/{r.device} still mounted at the end", at_end is not None and r.mountpoint in at_end,
                  f"{r.mountpoint} is still a pmem mount after the proof" if at_end is not None and r.mountpoint in at_end
                  else f"{r.mountpoint} is no longer mounted" if at_end is not None else
                  "the guest did not report its mounts at the end (an image older than this row)")
            for r in regions if r.mountpoint]


def _kernel_checks(plan: Plan, report: dict, kernel_release: str) -> list[Check]:
    checks = []
    if kernel_release:
        running = report.get("kernel_release")
        checks.append(Check("kernel release", running == kernel_release,
                            f"running {running}, built {kernel_release}"))
    config = report.get("kernel_config") or {}
    lost = lost_options(plan.kernel_options, config, modules_ok=plan.kernel_source == "distro")
    where = "no kernel config readable in the guest" if not config else f"{len(lost)} missing"
    if not plan.kernel_options:
        where = "the plan requires no kernel options (fragments missing), so nothing was checked"
    # /proc/config.gz is the running kernel's own; any other source is the file installed with the kernel.
    source = report.get("kernel_config_source") or ""
    name = "kernel options (running kernel)" if source == "/proc/config.gz" else \
        "kernel options (installed config file)"
    checks.append(Check(name, not lost and bool(config) and bool(plan.kernel_options),
                        f"all {len(plan.kernel_options)} required options present"
                        if not lost and config and plan.kernel_options else where,
                        [l.format() for l in lost][:20]))
    return checks


# The row naming the regions QEMU placed, by the nd bus provider their backend registers.
_PLACED = {"ACPI.NFIT": ("ACPI NFIT NVDIMM regions", "NVDIMM"), "virtio-pmem": ("virtio-pmem regions", "virtio-pmem"),
           "CXL": ("CXL nd regions", "CXL")}


def placed_regions(plan: Plan, report: dict, provider: str) -> tuple[Check, list[PlannedRegion]]:
    """The regions QEMU placed (NVDIMMs in the ACPI NFIT, virtio-pmem devices) against the plan: as many, in
    address order, each the planned size; the plan's regions come back with the address QEMU gave them (None
    where there is no region)."""
    found = sorted((r for r in report.get("regions") or [] if r.get("provider") == provider),
                   key=lambda r: int(str(r.get("resource") or "0"), 16))
    placed = [region.model_copy(update={"start": int(str(nd["resource"]), 16) if nd.get("resource") else None})
              for region, nd in zip(plan.regions, found, strict=False)] + plan.regions[len(found):]
    sizes_ok = all(nd.get("size") == region.size for region, nd in zip(plan.regions, found, strict=False))
    nfit = provider == "ACPI.NFIT"
    ok = (bool(report.get("nfit_table")) or not nfit) and len(found) == len(plan.regions) and sizes_ok
    seen = [f"{nd.get('dev')} {nd.get('size')} bytes at {nd.get('resource')}"
            + (f" on {','.join(nd.get('dimms') or [])}" if nfit else "") for nd in found]
    row, words = _PLACED.get(provider, (f"{provider} regions", provider))
    detail = (f"{len(found)} {words} region(s) of {len(plan.regions)} planned"
              + ("; no ACPI NFIT table" if nfit and not report.get("nfit_table") else "")
              + ("" if sizes_ok else "; sizes differ from the plan's"))
    return Check(row, ok,
                 detail + (f": {'; '.join(seen)}" if ok and seen else ""), [] if ok else seen), placed


def judge(plan: Plan, report: Optional[dict], kernel_release: str = "", warm_reboot: bool = False) -> list[Check]:
    """Every expectation of the plan against the guest's report; `kernel_release`: the one the build made;
    `warm_reboot`: the guest was asked to write seeds, reboot warm and check them."""
    if report is None:
        return [Check("boot report", False, "the guest wrote no report")]
    expect = backend_for(plan.pmem_backend).expectations(plan)
    tokens = report.get("cmdline", "").split()
    checks = [Check("boot report", True, f"kernel {report.get('kernel_release')}")]
    checks += _kernel_checks(plan, report, kernel_release)
    for region in plan.regions if expect.memmap_cmdline else ():
        argument = f"memmap={region.memmap}"
        checks.append(Check(f"cmdline {argument}", tokens.count(argument) == 1,
                            f"{argument} appears {tokens.count(argument)} time(s) in /proc/cmdline"))
    regions = plan.regions
    if plan.pmem_backend == "cxl":
        checks.extend(cxl_checks(plan, report))
    if expect.provider:
        found, regions = placed_regions(plan, report, expect.provider)
        checks.append(found)
    for region in regions:
        checks.extend(_region_checks(region, report, expect, plan.pmdk))
    checks.append(_kernel_clear_check(regions, report))
    checks.extend(_mounts_stay_checks(plan.regions, report))
    if warm_reboot:
        checks.extend(warm_reboot_checks(plan, report))
    failed_units = report.get("failed_units")
    checks.append(Check("no failed units", failed_units == [],
                        "every systemd unit came up" if failed_units == [] else
                        f"failed: {', '.join(failed_units or ['(not reported)'])}"))
    return checks


def checks_as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
