"""One way to boot: verify, run and test each describe the boot they want as a BootRequest (what to boot, on
which disk and bus, with which NVDIMM state, shares and purpose), and qemu_argv turns it into QEMU's command
line here and nowhere else. A new backend or option is one field of the request, not a parameter threaded
through every caller."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ..plan.backends import backend_for
from ..plan.model import Plan
from ..render.launch import STATE_DIRECTORY, machine_arguments, option_value
from .shares import CONTROL_TAG, TEST_OEM_STRING, Share

# OEM strings the image's units look for (SMBIOS type 11).
SELFTEST = "pmem-image:selftest"       # run the proof and write the report
POWEROFF = "pmem-image:poweroff"       # then power off
WARM_REBOOT = "pmem-image:warm-reboot"
POWER_CYCLE = "pmem-image:power-cycle"
SSH_KEY = "pmem-image:ssh-key="        # a public key for this boot only

# proof: the self-test runs and reports (verify); published: the image boots as a user's would, nothing asked
# of it; interactive: the console on this terminal, SSH forwarded (run); test: a command over 9p (test).
Purpose = Literal["proof", "published", "interactive", "test"]


@dataclass(frozen=True)
class BootRequest:
    plan: Plan
    disk: Path                              # what the guest boots from: an overlay over the image or an export
    accel: str                              # "kvm" or "tcg"
    purpose: Purpose = "proof"
    console: Optional[Path] = None          # the serial console's file (interactive: this terminal instead)
    report: Optional[Path] = None           # the second serial port, where the self-test writes its report
    bus: str = "virtio"                     # the disk's bus (an export is booted on its platform's)
    state: Path = STATE_DIRECTORY           # the directory of the NVDIMM backing files
    ovmf_vars: Optional[Path] = None        # the writable UEFI variables of a firmware boot
    direct: Optional[tuple[str, ...]] = None   # -kernel/-initrd/-append: QEMU loads the kernel, no firmware, no GRUB
    warm_reboot: bool = False               # the guest's reboot is a reset in the same process (RAM kept)
    power_cycle: bool = False               # the guest seeds its pmem mounts (a new QEMU process checks them)
    ssh_port: Optional[int] = None          # the guest's SSH forwarded to 127.0.0.1:ssh_port
    ssh_key: Optional[str] = None           # a public key the guest accepts for this boot (pmem-session-key)
    seed: Optional[Path] = None             # a NoCloud seed disk for cloud-init
    control: Optional[Path] = None          # test: the control share (command in, output and status out)
    shares: tuple[Share, ...] = ()          # test: the host directories shared read-write


def oem_strings(request: BootRequest) -> list[str]:
    """What the guest is asked to do. A proof with a login stays up for it; any other proof powers off."""
    proof = request.purpose == "proof"
    return [*([SELFTEST] if proof else []), *([POWEROFF] if proof and request.ssh_key is None else []),
            *([WARM_REBOOT] if request.warm_reboot else []), *([POWER_CYCLE] if request.power_cycle else []),
            *([TEST_OEM_STRING] if request.purpose == "test" else []),
            *([SSH_KEY + request.ssh_key] if request.ssh_key else [])]


def qemu_argv(request: BootRequest) -> list[str]:
    """QEMU's command line for the request. Every boot but an interactive one has only the devices it names
    (-nodefaults: no VGA, CD-ROM, parallel port or default NIC to probe) and its console in a file; an
    interactive one gets what a published image's launch contract gives a user, its console on this
    terminal (Ctrl-A X quits, Ctrl-A C is QEMU's monitor)."""
    plan, interactive = request.plan, request.purpose == "interactive"
    argv = machine_arguments(plan, request.disk, request.accel, request.ovmf_vars, bus=request.bus,
                             state=request.state, firmware=request.direct is None)
    if not interactive:
        argv += ["-nodefaults", "-vga", "none"]
    argv += list(request.direct or ())
    if oem := oem_strings(request):
        argv += ["-smbios", "type=11," + ",".join(f"value={option_value(s)}" for s in oem)]
    nic = (f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{request.ssh_port}-:22" if request.ssh_port
           else "none")
    if interactive:
        return argv + ["-serial", "mon:stdio", "-nic", nic]
    argv += ["-monitor", "none", "-nic", nic, *([] if request.warm_reboot else ["-no-reboot"])]
    for name, path in (("console", request.console), ("report", request.report)):
        assert path is not None, f"a {request.purpose} boot writes its {name} to a file"
        argv += ["-chardev", f"file,id={name},path={option_value(path)}", "-serial", f"chardev:{name}"]
    return argv + _seed_arguments(request) + _share_arguments(request)


def _seed_arguments(request: BootRequest) -> list[str]:
    if request.seed is None:
        return []
    drive = f"file={option_value(request.seed)},format=raw,readonly=on"
    pci_bus = backend_for(request.plan.pmem_backend).pci_bus
    if pci_bus:     # the backend's PCI bridges would get it otherwise (cxl)
        return ["-drive", f"{drive},if=none,id=seed", "-device", f"virtio-blk-pci,drive=seed,bus={pci_bus}"]
    return ["-drive", f"{drive},if=virtio"]


def _share_arguments(request: BootRequest) -> list[str]:
    """QEMU's 9p devices: the control share, then each shared directory."""
    if request.control is None:
        return []
    argv: list[str] = []
    for number, (path, tag) in enumerate([(request.control, CONTROL_TAG),
                                          *((s.host, s.tag) for s in request.shares)]):
        argv += ["-fsdev", f"local,id=fs{number},path={option_value(path)},security_model=none",
                 "-device", f"virtio-9p-pci,fsdev=fs{number},mount_tag={tag}"]
    return argv
