"""The launch contract: how the image must be started so its pmem regions exist (the machine type, the
exact RAM, the firmware the plan assumed), as a QEMU command line and as a libvirt domain (pure)."""

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

from ..plan.backends import backend_for
from ..plan.model import Plan
from ..profile.sizes import MIB, human_size

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


def option_value(path: Path | str) -> str:
    """A path inside a QEMU option string: ',' separates options there, so a literal one is doubled."""
    return str(path).replace(",", ",,")


def disk_arguments(disk: Path, disk_format: str, bus: str, pci_bus: Optional[str] = None) -> list[str]:
    """The root disk on a platform's bus: virtio (KVM clouds), pvscsi (VMware), ahci (Hyper-V Gen1-style,
    Azure), nvme (GCE, AWS Nitro), virtio-scsi (GCE's SCSI interface). pci_bus: the PCI bus it must be on (a
    backend whose bridges would otherwise get it)."""
    drive = f"file={option_value(disk)},format={disk_format}"
    if bus == "virtio" and pci_bus:
        return ["-drive", f"{drive},if=none,id=root", "-device", f"virtio-blk-pci,drive=root,bus={pci_bus}"]
    if bus == "virtio":
        return ["-drive", f"{drive},if=virtio"]
    controller = {"pvscsi": ["-device", "pvscsi,id=pvscsi0", "-device", "scsi-hd,drive=root,bus=pvscsi0.0,bootindex=0"],
                  "virtio-scsi": ["-device", "virtio-scsi-pci,id=scsi0",
                                  "-device", "scsi-hd,drive=root,bus=scsi0.0,bootindex=0"],
                  "ahci": ["-device", "ahci,id=ahci0", "-device", "ide-hd,drive=root,bus=ahci0.0,bootindex=0"],
                  "nvme": ["-device", "nvme,serial=pmem-image,drive=root,bootindex=0"]}[bus]
    return ["-drive", f"{drive},if=none,id=root", *controller]


STATE_DIRECTORY = Path("state")     # QEMU's default for a backend's files (relative to where it runs)
# Per-instance state lives outside the build outputs, which every rebuild replaces whole:
# OUT/.state/NAME/pmem-LAYOUT/ holds the NVDIMM backing files of one layout (a layout change starts a new
# directory and keeps the old one aside), OUT/.state/NAME/run/ the persistent run overlay and firmware vars.
STATE_ROOT = ".state"


def instance_state(out_root: Path, name: str) -> Path:
    return out_root / STATE_ROOT / name


def pmem_layout_key(plan: Plan) -> str:
    """What the backing files' contents belong to: their names and sizes (size + label area)."""
    files = backend_for(plan.pmem_backend).state_files(plan)
    return hashlib.sha256(json.dumps([[f.name, f.size] for f in files]).encode()).hexdigest()[:16]


def pmem_state_dir(out_root: Path, plan: Plan) -> Path:
    return instance_state(out_root, plan.name) / f"pmem-{pmem_layout_key(plan)}"


def describe_regions(plan: Plan) -> str:
    """The regions in the words of their backend: memmap= arguments, or the devices QEMU must be given."""
    backend = backend_for(plan.pmem_backend)
    if not backend.placed_by_qemu:
        return ", ".join(f"memmap={r.memmap}" for r in plan.regions)
    return ", ".join(f"{backend.device_words} {human_size(r.size)}"
                     + (f" + {human_size(r.label_size or 0)} labels" if backend.labelled else "") for r in plan.regions)


def machine_arguments(plan: Plan, disk: Path, accel: str, ovmf_vars: Optional[Path] = None,
                      disk_format: str = "qcow2", bus: str = "virtio", state: Path = STATE_DIRECTORY,
                      firmware: bool = True) -> list[str]:
    """The machine the image was planned for: type, memory, CPUs, firmware, pmem backend (state: the directory
    of its backing files, if it has any), its disk. firmware=False: QEMU's default firmware (SeaBIOS), for a
    kernel QEMU loads itself (-kernel), whatever firmware the plan boots from disk."""
    backend = backend_for(plan.pmem_backend)
    argv = ["qemu-system-x86_64", "-machine", plan.machine + backend.machine_options(plan),
            "-m", backend.memory_argument(plan), "-smp", str(plan.cpus)]
    features = backend.cpu_features(plan)
    if accel == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host" + features]
    else:
        argv += ["-accel", "tcg,thread=multi", "-cpu", "max" + features]  # max: CLWB/CLFLUSHOPT visible to the guest
    if plan.firmware == "uefi" and firmware:
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={option_value(OVMF_CODE)}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={option_value(ovmf_vars or OVMF_VARS.name)}"]
    argv += backend.qemu_arguments(plan, state)
    return argv + [*disk_arguments(disk, disk_format, bus, backend.pci_bus), "-display", "none"]


def launch_argv(plan: Plan, ssh_port: int = 2222) -> list[str]:
    """What `pmem-image run` starts, for the raw image as shipped: -snapshot keeps it unwritten; a UEFI
    image wants a writable copy of OVMF_VARS_4M.fd beside it; NVDIMM backing files live in state/ (QEMU
    creates a missing one, and share=on writes the guest's pmem to it, -snapshot or not)."""
    return [*machine_arguments(plan, Path(f"{plan.name}.raw"), "tcg", disk_format="raw"), "-snapshot",
            "-serial", "mon:stdio", "-nic", f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"]


def libvirt_domain(plan: Plan, image: Path) -> str:
    """A libvirt domain with the same memory layout: machine type, RAM in MiB, CPUs, firmware, a virtio disk,
    and for the nvdimm and virtio-pmem backends their memory devices (which need maxMemory with slots and a
    NUMA cell)."""
    domain = ET.Element("domain", type="kvm")
    ET.SubElement(domain, "name").text = plan.name
    ET.SubElement(domain, "description").text = (
        f"pmem-image {plan.name}: its pmem regions ({describe_regions(plan)}) "
        f"assume exactly this machine type and memory")
    backend = backend_for(plan.pmem_backend)
    state_files = backend.state_files(plan) if backend.libvirt_model else []   # libvirt's memory devices
    if state_files:
        ET.SubElement(domain, "maxMemory", slots=str(len(state_files)), unit="KiB").text = \
            str(backend.max_memory(plan) // 1024)
    ET.SubElement(domain, "memory", unit="MiB").text = str(plan.memory // MIB)
    ET.SubElement(domain, "currentMemory", unit="MiB").text = str(plan.memory // MIB)
    ET.SubElement(domain, "vcpu").text = str(plan.cpus)
    os_element = ET.SubElement(domain, "os", {"firmware": "efi"} if plan.firmware == "uefi" else {})
    ET.SubElement(os_element, "type", arch="x86_64", machine=plan.machine).text = "hvm"
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    cpu = ET.SubElement(domain, "cpu", mode="host-passthrough")
    if backend.cpu_features(plan) == ",-hypervisor":     # the cxl backend's VM gate
        ET.SubElement(cpu, "feature", policy="disable", name="hypervisor")
    if state_files:
        numa = ET.SubElement(cpu, "numa")
        ET.SubElement(numa, "cell", id="0", cpus=f"0-{plan.cpus - 1}", memory=str(plan.memory // MIB), unit="MiB")
    devices = ET.SubElement(domain, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw")
    ET.SubElement(disk, "source", file=str(image))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    interface = ET.SubElement(devices, "interface", type="user")
    ET.SubElement(interface, "model", type="virtio")
    for region, file in zip(plan.regions, state_files, strict=False):   # memmap: no state files
        memory = ET.SubElement(devices, "memory", model=str(backend.libvirt_model), access="shared")
        ET.SubElement(ET.SubElement(memory, "source"), "path").text = str(pmem_state_dir(image.parent.parent, plan)
                                                                          / file.name)
        target = ET.SubElement(memory, "target")
        ET.SubElement(target, "size", unit="KiB").text = str(file.size // 1024)
        if backend.labelled:   # libvirt gives virtio-pmem no NUMA node (it is a PCI device) and no labels
            ET.SubElement(target, "node").text = "0"
            ET.SubElement(ET.SubElement(target, "label"), "size", unit="KiB").text = str((region.label_size or 0) // 1024)
    if plan.pmem_backend == "cxl":
        _qemu_passthrough(domain, plan, pmem_state_dir(image.parent.parent, plan))
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode") + "\n"


QEMU_NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"
ET.register_namespace("qemu", QEMU_NAMESPACE)


def _qemu_passthrough(domain: ET.Element, plan: Plan, state: Path) -> None:
    """libvirt has no CXL model in the versions here: its documented QEMU command-line passthrough carries the
    topology (QEMU merges the second -machine into libvirt's own)."""
    backend = backend_for(plan.pmem_backend)
    commandline = ET.SubElement(domain, f"{{{QEMU_NAMESPACE}}}commandline")
    for value in ["-machine", backend.machine_options(plan).lstrip(","), *backend.qemu_arguments(plan, state)]:
        ET.SubElement(commandline, f"{{{QEMU_NAMESPACE}}}arg", value=value)
