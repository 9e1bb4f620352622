from builder.plan.planner import mount_unit_name
from conftest import PROFILES, plan_of_file, plan_of_text
from builder.profile.sizes import GIB

BASE = "name: t\ndistribution: {name: debian, release: bookworm}\n"


def test_default_profile_plan():
    plan, warnings = plan_of_file(PROFILES / "default.yaml")
    assert warnings == []
    (region,) = plan.regions
    assert (region.device, region.start, region.size, region.memmap) == ("pmem0", 4 * GIB, GIB, "1G!4G")
    assert region.dax_option == "dax=always" and "nofail" in region.mount_options
    assert region.mkfs == ["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "pmem0", "/dev/pmem0"]
    assert plan.kernel_cmdline[-1] == "memmap=1G!4G" and "console=ttyS0" in plan.kernel_cmdline
    assert "linux-image-amd64" in plan.packages and "grub-pc-bin" in plan.packages


def test_layout_and_firmware_do_not_change_the_package_set():
    """Every image carries both boot loaders, xfsprogs and daxctl, so switching the filesystem, the namespace mode or
    the firmware keeps the package layer; what the user opts into (PMDK here) still changes it."""
    ext4, _ = plan_of_text(BASE + "vm: {memory: 6G}\npmem:\n  - {size: 1G, offset: 4G}\n")
    other, _ = plan_of_text(BASE + "vm: {memory: 6G, firmware: uefi}\npmem:\n  - {size: 1G, offset: 4G, filesystem: xfs}\n"
                            "  - {size: 1G, offset: 5G, mode: devdax}\n")
    pmdk, _ = plan_of_text(BASE + "vm: {memory: 6G}\npmdk: true\npmem:\n  - {size: 1G, offset: 4G}\n")
    assert ext4.packages == other.packages and {"xfsprogs", "daxctl", "grub-pc-bin"} <= set(ext4.packages)
    assert not other.bios_bootloader and ext4.bios_bootloader
    assert set(pmdk.packages) > set(ext4.packages)


def test_devices_are_numbered_by_address():
    plan, _ = plan_of_text(BASE + "vm: {memory: 8G}\npmem:\n  - {memmap: 1G!5G, filesystem: xfs}\n  - {memmap: 1G!4G}\n")
    assert [(r.device, r.index, r.memmap, r.mountpoint) for r in plan.regions] == [
        ("pmem0", 1, "1G!4G", "/mnt/pmem0"), ("pmem1", 0, "1G!5G", "/mnt/pmem1")]
    assert plan.regions[1].mkfs[:6] == ["mkfs.xfs", "-q", "-f", "-m", "reflink=0", "-L"]


def test_old_kernel_gets_legacy_dax_and_uefi_has_no_bios_boot_partition():
    plan, _ = plan_of_text("name: t\ndistribution: {name: ubuntu, release: focal}\nvm: {memory: 2G, firmware: uefi}\n"
                           "pmem:\n  - {size: 512M, offset: 1G}\n")
    assert plan.regions[0].dax_option == "dax" and not plan.bios_bootloader


def test_more_than_four_regions_add_nokaslr_once():
    regions = "".join(f"  - {{size: 128M, offset: {4096 + 128 * i}M}}\n" for i in range(5))
    plan, warnings = plan_of_text(BASE + "pmem:\n" + regions)
    assert plan.kernel_cmdline.count("nokaslr") == 1 and warnings[0].severity == "warning"


def test_plan_is_canonical_and_hash_follows_content():
    first, _ = plan_of_file(PROFILES / "default.yaml")
    again, _ = plan_of_file(PROFILES / "default.yaml")
    other, _ = plan_of_text((PROFILES / "default.yaml").read_text().replace("cpus: 2", "cpus: 3"))
    assert first.digest() == again.digest() != other.digest()


def test_seed_is_stable_per_name():
    a, _ = plan_of_text(BASE + "pmem: [{memmap: 1G!4G}]\n")
    b, _ = plan_of_text(BASE.replace("name: t", "name: u") + "pmem: [{memmap: 1G!4G}]\n")
    assert a.seed == plan_of_text(BASE + "pmem: [{memmap: 1G!4G}]\n")[0].seed != b.seed


def test_mount_unit_names_match_systemd_escape():
    assert mount_unit_name("/mnt/pmem0") == "mnt-pmem0.mount"
    assert mount_unit_name("/srv/pmem-data") == "srv-pmem\\x2ddata.mount"
    assert mount_unit_name("/data/.x") == "data-\\x2ex.mount"


def test_the_root_filesystem_is_always_in_the_fragment_set():
    """An xfs-only profile still needs EXT4 for Debian's root; CentOS needs XFS, Fedora btrfs."""
    xfs_only = BASE.replace("bookworm", "bookworm") + "kernel: {source: debian-source, version: \"6.1\"}\n" \
        "pmem:\n  - {size: 1G, offset: 4G, filesystem: xfs}\n"
    plan, _ = plan_of_text(xfs_only)
    assert plan.kernel_options["EXT4_FS"] == "y" and plan.kernel_options["XFS_FS"] == "y"
    fedora, _ = plan_of_text("name: f\ndistribution: {name: fedora, release: \"43\"}\n"
                             "pmem:\n  - {size: 1G, offset: 4G}\n")
    assert fedora.root_filesystem == "btrfs" and fedora.kernel_options["BTRFS_FS"] == "y"


def test_an_unquoted_yaml_version_is_read_as_written():
    plan, _ = plan_of_text(BASE + "kernel: {source: debian-source, version: 6.10}\n"
                           "pmem:\n  - {size: 1G, offset: 4G}\n")
    assert plan.kernel_version == "6.10"


def test_uefi_boots_get_nokaslr_once():
    """The EFI stub of newer kernels picks the physical address without reading memmap=; nokaslr keeps the
    kernel out of the regions (harmless elsewhere). BIOS with <= 4 regions does not need it."""
    uefi, _ = plan_of_text(BASE + "vm: {firmware: uefi}\npmem:\n  - {size: 1G, offset: 4G}\n")
    assert uefi.kernel_cmdline.count("nokaslr") == 1
    bios, _ = plan_of_text(BASE + "pmem:\n  - {size: 1G, offset: 4G}\n")
    assert "nokaslr" not in bios.kernel_cmdline
    given, _ = plan_of_text(BASE + "vm: {firmware: uefi}\nkernel: {cmdline: [nokaslr]}\n"
                            "pmem:\n  - {size: 1G, offset: 4G}\n")
    assert given.kernel_cmdline.count("nokaslr") == 1
