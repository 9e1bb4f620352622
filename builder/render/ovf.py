"""The OVF 1.0 descriptor of an OVA (pure): one virtual system with the plan's CPUs, memory and firmware
(the pmem regions assume exactly that memory), a PVSCSI controller with the streamOptimized vmdk on it,
and a VMXNET3 NIC. Facts: ../shared/reference/publish-repro-nvdimm.md section 1b (VMware, OVA)."""

import xml.etree.ElementTree as ET

from ..plan.model import Plan
from ..profile.sizes import MIB
from .launch import describe_regions

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW = "http://www.vmware.com/schema/ovf"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
OS_OTHER_LINUX_64 = "101"      # CIM OperatingSystem: "Other Linux (64-bit)"
for prefix, uri in (("ovf", OVF), ("rasd", RASD), ("vssd", VSSD), ("vmw", VMW)):
    ET.register_namespace(prefix, uri)


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _item(hardware: ET.Element, instance: int, kind: int, name: str, **fields: str) -> ET.Element:
    item = ET.SubElement(hardware, _q(OVF, "Item"))
    values = {"ElementName": name, "InstanceID": str(instance), "ResourceType": str(kind), **fields}
    for key in sorted(values):       # CIM RASD properties in alphabetical order, as the schema lists them
        ET.SubElement(item, _q(RASD, key)).text = values[key]
    return item


def ovf_descriptor(plan: Plan, vmdk_name: str, vmdk_size: int, capacity: int) -> str:
    envelope = ET.Element(_q(OVF, "Envelope"))
    references = ET.SubElement(envelope, _q(OVF, "References"))
    ET.SubElement(references, _q(OVF, "File"), {_q(OVF, "href"): vmdk_name, _q(OVF, "id"): "file1",
                                                _q(OVF, "size"): str(vmdk_size)})
    disks = ET.SubElement(envelope, _q(OVF, "DiskSection"))
    ET.SubElement(disks, _q(OVF, "Info")).text = "The root disk (a streamOptimized vmdk)"
    ET.SubElement(disks, _q(OVF, "Disk"), {_q(OVF, "capacity"): str(capacity), _q(OVF, "diskId"): "vmdisk1",
                                           _q(OVF, "fileRef"): "file1", _q(OVF, "format"): STREAM_OPTIMIZED})
    networks = ET.SubElement(envelope, _q(OVF, "NetworkSection"))
    ET.SubElement(networks, _q(OVF, "Info")).text = "The network the NIC connects to"
    network = ET.SubElement(networks, _q(OVF, "Network"), {_q(OVF, "name"): "VM Network"})
    ET.SubElement(network, _q(OVF, "Description")).text = "The VM Network"
    system = ET.SubElement(envelope, _q(OVF, "VirtualSystem"), {_q(OVF, "id"): plan.name})
    ET.SubElement(system, _q(OVF, "Info")).text = (
        f"pmem-image {plan.name}: its pmem regions ({describe_regions(plan)}) "
        f"assume exactly {plan.memory // MIB} MiB of memory")
    ET.SubElement(system, _q(OVF, "Name")).text = plan.name
    os_section = ET.SubElement(system, _q(OVF, "OperatingSystemSection"), {_q(OVF, "id"): OS_OTHER_LINUX_64})
    ET.SubElement(os_section, _q(OVF, "Info")).text = f"{plan.distribution} {plan.release}"
    hardware = ET.SubElement(system, _q(OVF, "VirtualHardwareSection"))
    ET.SubElement(hardware, _q(OVF, "Info")).text = "Virtual hardware requirements"
    settings = ET.SubElement(hardware, _q(OVF, "System"))
    for key, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                       ("VirtualSystemIdentifier", plan.name), ("VirtualSystemType", "vmx-14")):
        ET.SubElement(settings, _q(VSSD, key)).text = value
    _item(hardware, 1, 3, f"{plan.cpus} virtual CPU(s)", AllocationUnits="hertz * 10^6",
          VirtualQuantity=str(plan.cpus))
    _item(hardware, 2, 4, f"{plan.memory // MIB} MB of memory", AllocationUnits="byte * 2^20",
          VirtualQuantity=str(plan.memory // MIB))
    _item(hardware, 3, 6, "SCSI controller 0", Address="0", ResourceSubType="VirtualSCSI")
    _item(hardware, 4, 17, "Hard disk 1", AddressOnParent="0", HostResource="ovf:/disk/vmdisk1", Parent="3")
    _item(hardware, 5, 10, "Network adapter 1", AddressOnParent="7", AutomaticAllocation="true",
          Connection="VM Network", ResourceSubType="VmxNet3")
    ET.SubElement(hardware, _q(VMW, "Config"), {_q(OVF, "required"): "false", _q(VMW, "key"): "firmware",
                                                _q(VMW, "value"): "efi" if plan.firmware == "uefi" else "bios"})
    ET.indent(envelope)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(envelope, encoding="unicode") + "\n"
