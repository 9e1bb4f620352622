"""pmem backends: how a plan's regions become pmem in the guest. Each backend owns its checks, its
kernel arguments, its QEMU arguments, its Kconfig fragments ('# applies: backend=NAME') and what the
boot proof must expect. Only memmap= (legacy e820 pmem) exists today; QEMU vNVDIMM and virtio-pmem
are the next ones, each a module here."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import Plan, PlannedRegion
    from ...profile.model import Profile


@dataclass(frozen=True)
class ProofExpectations:
    """What the boot proof must see for this backend (a check that expects the opposite fails)."""
    map_sync: bool           # MAP_SYNC accepted on a DAX mount (virtio-pmem must expect a refusal)
    legacy_e820: bool        # each region as "Persistent Memory (legacy)" in /proc/iomem
    memmap_cmdline: bool     # each region's memmap= exactly once on /proc/cmdline


class PmemBackend(ABC):
    name: str

    @abstractmethod
    def kernel_arguments(self, profile: "Profile", regions: list["PlannedRegion"]) -> list[str]:
        """Arguments this backend adds to the kernel command line."""

    @abstractmethod
    def qemu_arguments(self, plan: "Plan") -> list[str]:
        """QEMU arguments beyond machine, memory and CPUs that make the regions exist."""

    @abstractmethod
    def expectations(self, plan: "Plan") -> ProofExpectations:
        """What the proof of a plan with this backend expects."""


_BACKENDS: dict[str, PmemBackend] = {}


def register(backend: PmemBackend) -> PmemBackend:
    _BACKENDS[backend.name] = backend
    return backend


def backend_for(name: str) -> PmemBackend:
    return _BACKENDS[name]


from . import memmap  # noqa: E402,F401  (registers itself; its checks register with plan.checks)
