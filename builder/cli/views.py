"""Text views of a plan for people: region table, command line, fstab, memory picture (pure)."""

from ..plan.model import Plan
from ..profile.sizes import human_size
from ..knowledge.formats import boot_bus
from ..render.outputs import render

_GLYPH = {"ram": "=", "reserved": ".", "hole": " ", "pmem": "#"}
PICTURE_WIDTH = 64


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _wrap(words: list[str], width: int = 100) -> list[str]:
    lines, current = [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append("  " + current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return lines + (["  " + current] if current else [])


def memory_picture(plan: Plan) -> list[str]:
    """One strip from address 0 to the end of RAM, each span at least one character wide."""
    spans = plan.memory_map
    total = spans[-1].end
    strip = ""
    for span in spans:
        width = max(1, round(PICTURE_WIDTH * (span.end - span.start) / total))
        strip += _GLYPH[span.kind] * width
    legend = "  = RAM   # pmem   . reserved (firmware, initrd)   ' ' hole (no RAM)"
    rows = [[f"0x{s.start:012x}", f"0x{s.end - 1:012x}", human_size(s.end - s.start), s.kind, s.label]
            for s in spans]
    return [f"  |{strip}|", f"  0{' ' * (len(strip) - 1)}{human_size(total)}", legend, "",
            *("  " + r for r in _table(["start", "end", "size", "kind", "what"], rows))]


def _placement(plan: Plan, region) -> tuple[str, str]:
    """How a region is made, and where it is: memmap= at its address, or devices (NVDIMM, virtio-pmem, CXL) QEMU
    places."""
    if plan.pmem_backend == "cxl":
        count = plan.cxl.interleave_ways if plan.cxl else 1
        return (f"cxl window {region.number}: {count} device(s) (labels {human_size(region.label_size or 0)})",
                "placed by QEMU")
    if plan.pmem_backend == "nvdimm":
        return f"nvdimm{region.number} (labels {human_size(region.label_size or 0)})", "placed by QEMU"
    if region.memmap is None:
        return f"virtio-pmem{region.number}", "placed by QEMU"
    return f"memmap={region.memmap}", f"0x{region.start:x}-0x{region.start + region.size - 1:x}"


def _cxl_lines(plan: Plan) -> list[str]:
    """The topology, and how a region may commit in this VM (the VM gate) and what that changes for the guest."""
    if plan.cxl is None:
        return []
    topology = plan.cxl
    gate = ("the guest's CPUID hides the hypervisor bit (-cpu ...,-hypervisor): the distribution kernel then "
            "flushes caches with WBINVD as on bare metal; the guest no longer reads from CPUID that it is a VM "
            "(paravirtual clock and spinlocks under KVM are not used; systemd still sees QEMU in DMI)"
            if topology.vm_gate == "cpuid" else
            "the kernel built here has CONFIG_CXL_REGION_INVALIDATION_TEST=y (commit without the cache flush "
            "check); the CPU is as for every other image")
    return [f"cxl          {topology.host_bridges} host bridge(s), {topology.interleave_ways} device(s) a region, "
            f"interleave granularity {topology.interleave_granularity} bytes, one window a region",
            f"vm gate      {gate}"]


def plan_text(plan: Plan, filename: str) -> str:
    fstab = render(plan)["mkosi.extra/etc/fstab"].content
    region_rows = [[f"/dev/{r.device}", r.mode, r.map or "-", _placement(plan, r)[0], _placement(plan, r)[1], human_size(r.size),
                    r.filesystem, r.mountpoint or "-", r.dax_option or "-"] for r in plan.regions]
    lines = [
        f"profile      {filename} ({plan.name})",
        f"image        {plan.distribution} {plan.release}, kernel {plan.kernel_source} {plan.kernel_version}"
        + (", PMDK" if plan.pmdk else ""),
        f"vm           {plan.machine}, {plan.firmware}, {human_size(plan.memory)} RAM, {plan.cpus} CPUs",
        f"pmem backend {plan.pmem_backend}",
        *_cxl_lines(plan),
        "packages     " + (f"snapshot {plan.snapshot.stamp} ({plan.snapshot.archive})" if plan.snapshot
                            else "this host's mirror (what it serves today)"),
        *([f"exports      {', '.join(f'{name} (boots on {boot_bus(name, plan.firmware)})' for name in plan.formats)}"]
          if plan.formats else []),
        f"initrd disks {' '.join(plan.initrd_modules)}" + (" + cloud-init" if plan.cloud_init else ""),
        f"identity     {plan.digest()} (what the build key hashes; description and host paths are not in it)",
        "",
        "pmem regions",
        *("  " + r for r in _table(["device", "mode", "map", "kernel argument", "physical range", "size", "fs",
                                    "mountpoint", "dax"], region_rows)),
        "",
        "kernel command line",
        "  " + " ".join(plan.kernel_cmdline),
        "",
        "fstab",
        *("  " + line for line in fstab.splitlines() if line and not line.startswith("#")),
        "",
        f"kernel fragments ({'checked against the distribution kernel' if plan.kernel_source == 'distro' else plan.kernel_base + ' + these'})",
        "  " + " ".join(plan.kernel_fragments),
        "required kernel options" + (" (=y, or =m for a distribution kernel)" if plan.kernel_source == "distro" else ""),
        *_wrap([f"{symbol}={value}" for symbol, value in sorted(plan.kernel_options.items())]),
        "",
        "packages",
        "  " + " ".join(plan.packages),
        "",
        "guest physical memory",
        *memory_picture(plan),
    ]
    return "\n".join(lines) + "\n"
