"""Templates before any build: the formats a profile may name, the drivers each brings into the initrd, the
disk bus each boots on, cloud-init's configuration, the OVF descriptor, and the export command's errors."""

import xml.etree.ElementTree as ET

import pytest

from builder.cli.main import main
from builder.knowledge.formats import FORMATS, initrd_modules
from builder.render.launch import disk_arguments
from builder.render.outputs import render
from builder.render.ovf import OVF, RASD, ovf_descriptor
from conftest import PROFILES, plan_of_file, plan_of_text

BASE = "name: t\ndistribution: {name: debian, release: bookworm}\npmem: [{size: 1G, offset: 4G}]\n"


def test_each_format_brings_its_platform_drivers_and_only_those():
    assert initrd_modules([]) == ["virtio_blk", "virtio_scsi"]
    assert "vmw_pvscsi" in initrd_modules(["vmdk"]) and "hv_storvsc" not in initrd_modules(["vmdk"])
    assert {"hv_vmbus", "hv_storvsc", "ata_piix"} <= set(initrd_modules(["vhd"]))
    assert "nvme" in initrd_modules(["gce"]) and "vmw_pvscsi" not in initrd_modules(["gce", "qcow2"])
    conf = render(plan_of_text(BASE + "formats: [vmdk]\n")[0])["mkosi.conf"].content
    assert "/vmw_pvscsi\\.ko$" in conf and "/nd_pmem\\.ko$" in conf and "hv_storvsc" not in conf


def test_formats_are_checked_at_validation():
    with pytest.raises(Exception, match="vmdk is listed twice"):
        plan_of_text(BASE + "formats: [vmdk, qcow2, vmdk]\n")


def test_an_unknown_or_hostile_format_is_bad_input(tmp_path, capsys):
    for value in ("[iso]", "['qcow2; rm -rf /']", "qcow2"):
        path = tmp_path / "p.yaml"
        path.write_text(BASE + f"formats: {value}\n")
        assert main(["validate", str(path)]) == 2
        assert "formats" in capsys.readouterr().err


@pytest.mark.parametrize("bus, device", [("virtio", "if=virtio"), ("pvscsi", "pvscsi,id=pvscsi0"),
                                         ("ahci", "ahci,id=ahci0"), ("nvme", "nvme,serial=pmem-image,drive=root")])
def test_each_bus_puts_the_root_disk_on_its_controller(tmp_path, bus, device):
    assert any(device in argument for argument in disk_arguments(tmp_path / "d.qcow2", "qcow2", bus))
    assert {f.bus for f in FORMATS.values()} <= {"virtio", "pvscsi", "ahci", "nvme"}


def test_cloud_init_is_configured_to_leave_the_pmem_setup_alone():
    plan = plan_of_file(PROFILES / "templates.yaml")[0]
    files = render(plan)
    assert "cloud-init" in plan.packages and plan.cloud_init
    config = files["mkosi.extra/etc/cloud/cloud.cfg.d/90-pmem-image.cfg"].content
    assert "- [ephemeral0]" in config and "NoCloud" in config and "Azure" in config
    assert "/var/lib/cloud/*" in files["mkosi.finalize"].content          # no instance state shipped
    assert "mkosi.extra/etc/cloud/cloud.cfg.d/90-pmem-image.cfg" not in render(plan_of_text(BASE)[0])


def test_cloud_init_gets_ssh_unless_the_profile_turns_it_off():
    """A cloud-init template's users log in over SSH: without ssh: in the profile it has a server and a network;
    ssh: false is honoured, with a warning."""
    plan, warnings = plan_of_text(BASE + "cloud_init: true\n")
    assert plan.ssh and plan.network == "dhcp" and warnings == []
    assert "openssh-server" in plan.packages
    plan, warnings = plan_of_text(BASE + "cloud_init: true\nssh: false\n")
    assert not plan.ssh and [w.path for w in warnings] == [("cloud_init",)]
    assert not plan_of_text(BASE)[0].ssh


def test_the_ovf_states_firmware_cpus_memory_and_the_disk():
    plan = plan_of_file(PROFILES / "debian-xfs-uefi.yaml")[0]
    root = ET.fromstring(ovf_descriptor(plan, "x.vmdk", 1234, 2 << 30))
    assert root.find(f"{{{OVF}}}References/{{{OVF}}}File").get(f"{{{OVF}}}size") == "1234"
    quantities = {i.find(f"{{{RASD}}}ResourceType").text: i.find(f"{{{RASD}}}VirtualQuantity")
                  for i in root.iter(f"{{{OVF}}}Item")}
    assert quantities["3"].text == str(plan.cpus) and quantities["4"].text == str(plan.memory >> 20)
    assert 'value="efi"' in ovf_descriptor(plan, "x.vmdk", 1, 1)


def test_export_of_a_missing_build_says_what_to_do(tmp_path, capsys):
    code = main(["export", str(PROFILES / "default.yaml"), "--format", "qcow2", "--out", str(tmp_path)])
    assert code == 2 and "build it first" in capsys.readouterr().err


def test_verify_of_an_export_that_was_not_made_says_how_to_make_it(tmp_path):
    from builder.profile.errors import UsageError
    from builder.runner import Runner
    from builder.verify.templates import boot_disk
    plan = plan_of_file(PROFILES / "default.yaml")[0]
    assert boot_disk(plan, tmp_path, tmp_path, None, Runner()) == (tmp_path / "default.raw", "raw", "virtio")
    with pytest.raises(UsageError) as caught:
        boot_disk(plan, tmp_path, tmp_path, "vmdk", Runner())
    assert "no vmdk export" in caught.value.message and "--format vmdk" in caught.value.hint


@pytest.mark.parametrize("bus, source, passed", [
    ("pvscsi", "/dev/sda1", True), ("nvme", "/dev/nvme0n1p1", True), ("nvme", "/dev/vda1", False),
    ("virtio", "/dev/vda2", True), ("ahci", "/dev/vda2", False), ("ahci", None, False)])
def test_the_root_disk_row_holds_only_when_root_came_from_that_bus(tmp_path, bus, source, passed):
    from builder.verify.templates import root_disk_check
    check = root_disk_check(tmp_path / "t.vmdk", "vmdk", bus, {"root_source": source})
    assert check.passed is passed and bus in check.name


def test_the_verify_bus_follows_what_this_hosts_firmware_can_boot():
    from builder.knowledge.formats import boot_bus
    assert boot_bus("gce", "uefi") == "nvme" and boot_bus("gce", "bios") == "virtio-scsi"
    assert boot_bus("vmdk", "bios") == "pvscsi" and boot_bus("ova", "uefi") == "ahci"
    assert boot_bus("vhd", "bios") == boot_bus("vhd", "uefi") == "ahci"


def test_verify_cloud_init_of_an_image_without_it_is_refused_before_anything_is_written(tmp_path):
    from builder.profile.errors import UsageError
    from builder.runner import Runner
    from builder.verify.boot import verify
    plan = plan_of_file(PROFILES / "default.yaml")[0]
    (tmp_path / "default.raw").write_bytes(b"")
    with pytest.raises(UsageError, match="built without cloud-init"):
        verify(plan, tmp_path, Runner(), accel="tcg", cloud_init=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default.raw"]
