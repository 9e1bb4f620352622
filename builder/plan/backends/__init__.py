"""pmem backends: how a plan's regions become pmem in the guest. Each backend owns its checks, its
kernel arguments, its QEMU arguments, its Kconfig fragments ('# applies: backend=NAME') and what the
boot proof must expect: memmap= (legacy e820 pmem carved from RAM), nvdimm (QEMU vNVDIMMs backed by host
files, with labels), virtio-pmem (paravirtual pmem backed by host files, flushed by a request to the
host, so without MAP_SYNC) and cxl (CXL type-3 devices with persistent capacity in host files, a region
committed at every boot). Each is a module here."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ...profile.sizes import GIB, MIB, round_up

if TYPE_CHECKING:
    from ..model import Plan, PlannedRegion
    from ...profile.model import Profile


@dataclass(frozen=True)
class ProofExpectations:
    """What the boot proof must see for this backend (a check that expects the opposite fails)."""
    map_sync: bool           # MAP_SYNC accepted on a DAX mount (virtio-pmem must expect a refusal)
    legacy_e820: bool        # each region as "Persistent Memory (legacy)" in /proc/iomem
    memmap_cmdline: bool     # each region's memmap= exactly once on /proc/cmdline
    nfit: bool = False       # each region an ACPI NFIT region, its namespace described by a label
    survives_power_off: bool = False   # the content is kept when QEMU exits (a host file, not RAM)
    provider: Optional[str] = None     # the nd bus provider of regions QEMU places (their address is found at boot)
    cpu_flush_durable: bool = True     # PMDK may flush with CPU instructions (libpmem2 CACHE_LINE or BYTE
                                       # granularity); False: it must msync/fsync (PAGE), as virtio-pmem asks


@dataclass(frozen=True)
class StateFile:
    """A file on the host that holds a region's content between QEMU runs (created sparse on first use)."""
    name: str                # file name inside the state directory
    size: int                # bytes, label area included


class PmemBackend(ABC):
    name: str
    modules: tuple[str, ...]           # loaded at boot (modules-load.d) to make the regions
    placed_by_qemu: bool = False       # QEMU gives each region its address (memory devices above the RAM)
    labelled: bool = False             # each region has a label area where ndctl keeps its namespace
    device_words: str = ""             # what the guest is given, for descriptions ("NVDIMM")
    libvirt_model: Optional[str] = None   # libvirt's <memory model=...> for a region
    kernel_options: tuple[str, ...] = ()  # guest kernel options without which the regions do not appear
    labels_made_by_ndctl: bool = False    # labelled: create-namespace writes an empty label area (no init-labels)
    pci_bus: Optional[str] = None         # where the disk and other PCI devices must go (None: QEMU's choice)
    proof_store_size: str = "4M"          # what the proof's flush test stores per method

    def cpu_features(self, plan: "Plan") -> str:
        """Appended to -cpu MODEL."""
        return ""

    def machine_options(self, plan: "Plan") -> str:
        """Appended to -machine TYPE."""
        return ""

    def max_memory(self, plan: "Plan") -> int:
        """The most memory the machine may have with its memory devices (bytes): RAM and every backing file,
        in whole GiB (QEMU refuses maxmem == RAM when there are memory devices)."""
        files = self.state_files(plan)
        return round_up(plan.memory + sum(f.size for f in files), GIB) if files else plan.memory

    def memory_argument(self, plan: "Plan") -> str:
        """QEMU's -m value: with memory devices, a slot each and room for them (maxmem)."""
        files = self.state_files(plan)
        if not files:
            return f"{plan.memory // MIB}M"
        return f"{plan.memory // MIB}M,slots={len(files)},maxmem={self.max_memory(plan) // MIB}M"

    def state_files(self, plan: "Plan") -> list[StateFile]:
        """Host files the regions live in ([] when they are RAM)."""
        return []

    @abstractmethod
    def kernel_arguments(self, profile: "Profile", regions: list["PlannedRegion"]) -> list[str]:
        """Arguments this backend adds to the kernel command line."""

    @abstractmethod
    def qemu_arguments(self, plan: "Plan", state: Path) -> list[str]:
        """QEMU arguments beyond machine, memory and CPUs that make the regions exist (state: the
        directory of state_files())."""

    @abstractmethod
    def expectations(self, plan: "Plan") -> ProofExpectations:
        """What the proof of a plan with this backend expects."""


_BACKENDS: dict[str, PmemBackend] = {}


def register(backend: PmemBackend) -> PmemBackend:
    _BACKENDS[backend.name] = backend
    return backend


def backend_for(name: str) -> PmemBackend:
    return _BACKENDS[name]


from . import cxl, memmap, memory_devices, nvdimm, virtio_pmem  # noqa: E402,F401  (register themselves; their checks register with plan.checks)
