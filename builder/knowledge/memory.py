"""The guest's physical memory map as QEMU lays it out, and where pmem regions may go."""

from dataclasses import dataclass

from ..profile.sizes import GIB, MIB

FOUR_GIB = 4 * GIB
# The x86-64 memory section: memory is hot-added (NVDIMMs) and its struct pages laid out (pfn, devdax) in
# whole sections, so pmem regions of either backend are multiples of it.
SECTION_SIZE = 128 * MIB
LOW_FIRMWARE_GUARD = 16 * MIB   # real-mode area, BIOS, the kernel's low allocations
TOP_OF_LOW_GUARD = 256 * MIB    # ACPI tables, OVMF and GRUB's initrd sit at the top of low RAM


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # exclusive
    kind: str  # "ram", "reserved", "hole", "pmem"
    label: str = ""

    @property
    def size(self) -> int:
        return self.end - self.start


def ram_below_4g(memory: int, machine: str) -> int:
    """How much RAM QEMU keeps below 4 GiB (the rest starts at 4 GiB).

    q35 keeps up to 2.75 GiB low, but moves everything above 2 GiB up once RAM reaches 2.75 GiB;
    pc (i440fx) does the same with 3.5 GiB / 3 GiB.
    """
    if machine == "q35":
        return 2 * GIB if memory >= 2816 * MIB else memory
    return 3 * GIB if memory >= 3584 * MIB else memory


def ram_spans(memory: int, machine: str) -> list[Span]:
    low = ram_below_4g(memory, machine)
    spans = [Span(0, low, "ram", "low RAM")]
    if memory > low:
        spans.append(Span(FOUR_GIB, FOUR_GIB + memory - low, "ram", "high RAM"))
    return spans


def pmem_windows(memory: int, machine: str) -> list[Span]:
    """The RAM ranges a pmem region may use: RAM minus the firmware guards of low RAM."""
    windows = []
    for span in ram_spans(memory, machine):
        if span.start == 0:
            start, end = LOW_FIRMWARE_GUARD, span.end - TOP_OF_LOW_GUARD
            if end > start:
                windows.append(Span(start, end, "ram", span.label))
        else:
            windows.append(span)
    return windows


def memory_map(memory: int, machine: str, regions: list[Span]) -> list[Span]:
    """The whole map from 0 to the end of RAM: RAM, guards, the PCI hole and pmem regions."""
    edges = []
    low = ram_below_4g(memory, machine)
    edges.append(Span(0, LOW_FIRMWARE_GUARD, "reserved", "firmware, low kernel memory"))
    edges.append(Span(LOW_FIRMWARE_GUARD, max(LOW_FIRMWARE_GUARD, low - TOP_OF_LOW_GUARD), "ram", "RAM"))
    edges.append(Span(max(LOW_FIRMWARE_GUARD, low - TOP_OF_LOW_GUARD), low, "reserved",
                      "firmware tables, initrd"))
    if memory > low:
        edges.append(Span(low, FOUR_GIB, "hole", "PCI/MMIO hole"))
        edges.append(Span(FOUR_GIB, FOUR_GIB + memory - low, "ram", "RAM"))
    cuts = sorted({0, *(s.start for s in edges), *(s.end for s in edges),
                   *(r.start for r in regions), *(r.end for r in regions)})
    result: list[Span] = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        region = next((r for r in regions if r.start <= start and end <= r.end), None)
        base = next((s for s in edges if s.start <= start and end <= s.end), None)
        if region is not None:
            piece = Span(start, end, "pmem", region.label)
        elif base is not None:
            piece = Span(start, end, base.kind, base.label)
        else:
            piece = Span(start, end, "hole", "no RAM")
        if result and result[-1].kind == piece.kind and result[-1].label == piece.label and result[-1].end == start:
            result[-1] = Span(result[-1].start, end, piece.kind, piece.label)
        elif piece.size > 0:
            result.append(piece)
    return result
