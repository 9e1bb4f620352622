"""The cxl backend: each region a CXL fixed memory window over one or more CXL type-3 devices whose persistent
capacity is a host file (memory-backend-file, share=on), each with a label storage area (a second file) where
ndctl keeps the namespace. QEMU builds the topology: host bridges (pxb-cxl), a root port per device (cxl-rp),
the devices (cxl-type3) and one window per region (-machine cxl-fmw.N). Linux enumerates it; the region itself
is not kept across boots (Linux does not yet store region configuration in the labels), so the image commits
each one again at every boot with exactly the same parameters (pmem-cxl-regions), and its namespace is then
found in the labels. Facts: qemu docs/system/devices/cxl.rst; ../shared/reference/anchors-2026-12.md §2."""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ...knowledge.kernels import format_version, parse_version
from ...knowledge.namespaces import DEFAULT_LABEL_SIZE
from ...profile.errors import Problem
from ...profile.sizes import GIB, MIB, format_size
from ..checks import CheckContext, check, multiples_near
from .memory_devices import ADDRESS_SPACE
from . import PmemBackend, ProofExpectations, StateFile, register

NAME = "cxl"
FIRST_KERNEL = parse_version("6.0")    # CXL regions (cxl create-region) came in Linux 6.0
CAPACITY_UNIT = 256 * MIB              # a type-3 device's capacity and a window's size: multiples of 256M (CXL 2.0)
MAX_DEVICES_PER_BRIDGE = 8             # each root port takes a PCI bus number under its host bridge
BUS_NUMBERS = 16                       # bus numbers given to each host bridge (12, 28, 44, 60)
SERIAL_BASE = 1                        # device k has serial number k + 1: the image finds its devices by serial


@dataclass(frozen=True)
class CxlDevice:
    number: int          # global, in plan order: region r's devices are r*ways ... r*ways + ways - 1
    region: int          # the plan's region number
    position: int        # its place in the region's interleave
    host_bridge: int
    root_port: int       # the port number on its host bridge
    size: int            # persistent capacity (bytes)
    label_size: int

    @property
    def serial(self) -> int:
        return self.number + SERIAL_BASE


def devices(plan) -> list[CxlDevice]:
    """Every type-3 device: a region's devices go to the host bridges in turn, a root port each."""
    topology = plan.cxl
    ways, bridges = topology.interleave_ways, topology.host_bridges
    ports = [0] * bridges
    found: list[CxlDevice] = []
    for region in plan.regions:
        for position in range(ways):
            bridge = position % bridges
            found.append(CxlDevice(len(found), region.number, position, bridge, ports[bridge], region.size // ways,
                                   region.label_size or DEFAULT_LABEL_SIZE))
            ports[bridge] += 1
    return found


def window_bridges(plan) -> list[int]:
    """The host bridges each region's window interleaves across (the same for every region)."""
    return list(range(min(plan.cxl.interleave_ways, plan.cxl.host_bridges)))


class CxlBackend(PmemBackend):
    name = NAME
    modules = ("cxl_acpi", "cxl_pci", "cxl_mem", "cxl_port", "cxl_pmem", "nd_pmem")
    placed_by_qemu = True
    labelled = True
    labels_made_by_ndctl = True        # a CXL device's label area needs no init-labels: create-namespace writes it
    device_words = "CXL type-3 device"
    kernel_options = ("CXL_BUS", "CXL_PCI", "CXL_ACPI", "CXL_MEM", "CXL_PORT", "CXL_PMEM", "CXL_REGION",
                      "LIBNVDIMM", "BLK_DEV_PMEM")
    pci_bus = "pcie.0"                 # QEMU would plug an unplaced PCI device into a CXL host bridge, which refuses it
    # Stores to a CXL window are emulated MMIO under TCG (about 0.04 GB/s here against 2 GB/s for RAM-backed pmem):
    # the proof's flush test stores less per method.
    proof_store_size = "1M"

    def kernel_arguments(self, profile, regions) -> list[str]:
        return []   # ACPI (CEDT) describes the host bridges and windows; the devices are on PCI

    def memory_argument(self, plan) -> str:
        return f"{plan.memory // MIB}M"     # the windows are address space of their own, not DIMM slots

    def max_memory(self, plan) -> int:
        return plan.memory

    def cpu_features(self, plan) -> str:
        # The VM gate (plan.cxl.vm_gate): a distribution kernel commits a region only when CPUID shows no hypervisor.
        return ",-hypervisor" if plan.cxl.vm_gate == "cpuid" else ""

    def machine_options(self, plan) -> str:
        options = ",cxl=on"
        bridges = window_bridges(plan)
        for region in plan.regions:
            window = f"cxl-fmw.{region.number}"
            options += "".join(f",{window}.targets.{i}=cxl.{bridge}" for i, bridge in enumerate(bridges))
            options += f",{window}.size={region.size // MIB}M"
            if len(bridges) > 1:
                options += f",{window}.interleave-granularity={plan.cxl.interleave_granularity}"
        return options

    def state_files(self, plan) -> list[StateFile]:
        files = []
        for device in devices(plan):
            files += [StateFile(f"cxl{device.number}.img", device.size),
                      StateFile(f"cxl{device.number}-labels.img", device.label_size)]
        return files

    def qemu_arguments(self, plan, state: Path) -> list[str]:
        argv = []
        for bridge in range(plan.cxl.host_bridges):
            argv += ["-device", f"pxb-cxl,bus_nr={12 + BUS_NUMBERS * bridge},bus={self.pci_bus},id=cxl.{bridge}"]
        for device in devices(plan):
            n = device.number
            memory, labels = (str(state / name).replace(",", ",,") for name in (f"cxl{n}.img", f"cxl{n}-labels.img"))
            argv += ["-object", f"memory-backend-file,id=cxl-mem{n},share=on,mem-path={memory},size={device.size}",
                     "-object", f"memory-backend-file,id=cxl-lsa{n},share=on,mem-path={labels},size={device.label_size}",
                     "-device", f"cxl-rp,port={device.root_port},bus=cxl.{device.host_bridge},id=cxl-rp{n},"
                                f"chassis=0,slot={n + 2}",
                     "-device", f"cxl-type3,bus=cxl-rp{n},persistent-memdev=cxl-mem{n},lsa=cxl-lsa{n},"
                                f"id=cxl-pmem{n},sn={device.serial}"]
        return argv

    def expectations(self, plan) -> ProofExpectations:
        return ProofExpectations(map_sync=True, legacy_e820=False, memmap_cmdline=False, survives_power_off=True,
                                 provider="CXL")


register(CxlBackend())


@check()
def check_cxl_needs_backend(ctx: CheckContext) -> Iterable[Problem]:
    if ctx.profile.cxl is not None and ctx.backend != NAME:
        yield Problem(("cxl",), f"cxl: describes a CXL topology, but pmem_backend is {ctx.backend}",
                      "drop cxl:, or set pmem_backend: cxl")


@check(backend=NAME)
def check_cxl_machine(ctx: CheckContext) -> Iterable[Problem]:
    if ctx.profile.vm.machine != "q35":
        yield Problem(("vm", "machine"), f"QEMU has CXL host bridges only on q35, not {ctx.profile.vm.machine}",
                      "use machine: q35")
    if ctx.kernel < FIRST_KERNEL:
        yield Problem(("pmem_backend",), f"kernel {format_version(ctx.kernel)} cannot make CXL regions (cxl "
                      "create-region needs Linux 6.0)", "use a newer distribution or kernel (Debian trixie has 6.12)")
    if not ctx.release.packages.cxl:
        yield Problem(("distribution",), f"pmem-image does not know {ctx.release.label}'s package of ndctl's cxl tool",
                      "use Debian or Ubuntu")


@check(backend=NAME)
def check_cxl_sizes(ctx: CheckContext) -> Iterable[Problem]:
    """A type-3 device's capacity and a window are whole 256M units, and a region is split evenly over its devices."""
    topology = ctx.profile.cxl
    ways = topology.interleave_ways if topology else 1
    unit = CAPACITY_UNIT * ways
    for index, region in enumerate(ctx.profile.pmem):
        if region.size and region.size % unit:
            over = f" over {ways} devices" if ways > 1 else ""
            yield Problem(("pmem", index, "size"), f"size {format_size(region.size)} is not a multiple of "
                          f"{format_size(unit)}: a CXL device's capacity is whole 256M units{over}",
                          f"use {multiples_near(region.size, unit)}")


@check(backend=NAME)
def check_cxl_address_space(ctx: CheckContext) -> Iterable[Problem]:
    """QEMU puts the windows above the RAM (and its 1G of hotplug slack); -cpu max has 1T of guest physical
    addresses under TCG."""
    windows = sum(region.size or 0 for region in ctx.profile.pmem)
    top = 4 * GIB + ctx.profile.vm.memory + GIB + windows
    if top > ADDRESS_SPACE:
        yield Problem(("pmem",), f"RAM {format_size(ctx.profile.vm.memory)} and CXL windows of {format_size(windows)} "
                      f"reach {format_size(top)}, beyond the 1T of guest physical addresses QEMU's -cpu max has",
                      "shrink the regions or the RAM")


@check(backend=NAME)
def check_cxl_topology(ctx: CheckContext) -> Iterable[Problem]:
    topology = ctx.profile.cxl
    if topology is None:
        return
    ways, bridges = topology.interleave_ways, topology.host_bridges
    if bridges > ways:
        yield Problem(("cxl", "host_bridges"), f"{bridges} host bridges for regions of {ways} device(s): the "
                      "ones past the first would have no device", f"use host_bridges: {ways} or fewer")
    elif ways % bridges:
        yield Problem(("cxl", "host_bridges"), f"{ways} devices cannot be spread evenly over {bridges} host bridges",
                      "use a host_bridges that divides interleave_ways")
    per_bridge = len(ctx.profile.pmem) * ways // max(1, min(bridges, ways))
    if per_bridge > MAX_DEVICES_PER_BRIDGE:
        yield Problem(("pmem",), f"{per_bridge} devices behind one host bridge; pmem-image gives each at most "
                      f"{MAX_DEVICES_PER_BRIDGE} (a root port each, {BUS_NUMBERS} bus numbers a bridge)",
                      "use fewer regions, fewer interleave_ways or more host_bridges")
