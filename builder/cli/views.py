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


def _placement(region) -> tuple[str, str]:
    """How a region is made, and where it is: memmap= at its address, or a device (NVDIMM, virtio-pmem) QEMU
    places."""
    if region.memmap is None and region.label_size is not None:
        return f"nvdimm{region.number} (labels {human_size(region.label_size)})", "placed by QEMU"
    if region.memmap is None:
        return f"virtio-pmem{region.number}", "placed by QEMU"
    return f"memmap={region.memmap}", f"0x{region.start:x}-0x{region.start + region.size - 1:x}"


def plan_text(plan: Plan, filename: str) -> str:
    fstab = render(plan)["mkosi.extra/etc/fstab"].content
    region_rows = [[f"/dev/{r.device}", r.mode, r.map or "-", _placement(r)[0], _placement(r)[1], human_size(r.size),
                    r.filesystem, r.mountpoint or "-", r.dax_option or "-"] for r in plan.regions]
    lines = [
        f"profile      {filename} ({plan.name})",
        f"image        {plan.distribution} {plan.release}, kernel {plan.kernel_source} {plan.kernel_version}"
        + (", PMDK" if plan.pmdk else ""),
        f"vm           {plan.machine}, {plan.firmware}, {human_size(plan.memory)} RAM, {plan.cpus} CPUs",
        f"pmem backend {plan.pmem_backend}",
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
