"""Each named check on its own: the problem it reports, and silence on a good profile."""

from pathlib import Path

import pytest

from builder.knowledge.distros import find_release
from builder.knowledge.kconfig import bundled_fragments_dir, load_fragments
from builder.plan import checks
from builder.plan.backends import memmap
from builder.plan.checks import CheckContext
from builder.profile.model import Profile
from builder.render.outputs import render
from conftest import plan_of_text

GOOD = {"name": "good", "distribution": {"name": "debian", "release": "bookworm"},
        "pmem": [{"size": "1G", "offset": "4G"}]}
BOOKWORM = (6, 1, 0)


def profile(**changes) -> Profile:
    data = {**GOOD, **changes}
    return Profile.model_validate(data)


def context(prof, kernel=BOOKWORM, fragments=None) -> CheckContext:
    release = find_release(prof.distribution.name, prof.distribution.release)
    return CheckContext(prof, kernel, release, fragments or load_fragments(bundled_fragments_dir()), "memmap")


def messages(check, prof, kernel=BOOKWORM, fragments=None):
    return [(p.path, p.message, p.severity) for p in check(context(prof, kernel, fragments))]


def test_registry_holds_generic_and_backend_checks():
    names = [c.__name__ for c in checks.registered_checks("memmap")]
    assert "check_mountpoints" in names and "check_region_alignment" in names
    assert "check_region_alignment" not in [c.__name__ for c in checks.registered_checks("other-backend")]


@pytest.mark.parametrize("check", checks.registered_checks("memmap"), ids=lambda c: c.__name__)
def test_every_check_passes_a_good_profile(check):
    assert messages(check, profile()) == []


def test_kernel_version_floor():
    assert "older than 4.3: it lacks ZONE_DEVICE" in messages(checks.check_kernel_version_floor, profile(),
                                                              (4, 2, 0))[0][1]
    assert messages(checks.check_kernel_version_floor, profile(), (4, 3, 0)) == []


@pytest.mark.parametrize("kernel, paths", [
    ({"source": "tarball", "version": "6.1"}, [("kernel", "url"), ("kernel", "sha256")]),
    ({"source": "tree", "version": "6.1"}, [("kernel", "path")]),
    ({"source": "distro", "path": "/src/linux"}, [("kernel", "path")]),
    ({"source": "debian-source", "version": "6.1", "url": "x.tar.xz"}, [("kernel", "url")]),
    ({"source": "tarball", "version": "6.1", "url": "https://example.org/linux.tar.xz", "sha256": "0" * 64}, []),
])
def test_kernel_source_fields(kernel, paths):
    assert [p[0] for p in messages(checks.check_kernel_source_fields, profile(kernel=kernel))] == paths


def test_debian_source_needs_debian():
    prof = profile(distribution={"name": "ubuntu", "release": "noble"}, kernel={"source": "debian-source",
                                                                                "version": "6.1"})
    assert "debian-source builds Debian's" in messages(checks.check_kernel_source_fields, prof)[0][1]


def test_region_size_above_zero():
    assert messages(checks.check_region_sizes, profile(pmem=[{"size": "0", "offset": "4G"}]))[0][0] == ("pmem", 0, "size")


def test_region_alignment_names_both_fields_and_offers_neighbours():
    problems = list(memmap.check_region_alignment(context(profile(pmem=[{"size": "129M", "offset": "4097M"}]))))
    assert [p.path for p in problems] == [("pmem", 0, "offset"), ("pmem", 0, "size")]
    assert "use 4G or 4224M" in problems[0].hint


def test_regions_disjoint_sorts_by_address():
    prof = profile(vm={"memory": "8G"}, pmem=[{"size": "1G", "offset": "5G"}, {"size": "2G", "offset": "4G"}])
    assert messages(memmap.check_regions_disjoint, prof) == [
        (("pmem", 0, "offset"), "region overlaps pmem[1] (4G-6G)", "error")]


@pytest.mark.parametrize("memory, machine, offset, ok", [
    ("4G", "q35", "4G", True), ("4G", "q35", "5G", True), ("4G", "q35", "6G", False),  # high RAM ends at 6G
    ("4G", "q35", "1G", False),          # 1G-2G touches the firmware guard at the top of low RAM
    ("2G", "q35", "512M", True), ("2560M", "q35", "1G", True), ("2816M", "q35", "1G", False), ("4G", "pc", "4G", True), ("3G", "pc", "4G", False),
    ("4G", "q35", "3G", False),          # PCI hole
])
def test_regions_inside_ram(memory, machine, offset, ok):
    prof = profile(vm={"memory": memory, "machine": machine}, pmem=[{"size": "1G", "offset": offset}])
    assert (messages(memmap.check_regions_inside_ram, prof) == []) == ok


def test_outside_ram_says_where_ram_is():
    prof = profile(vm={"memory": "4G"}, pmem=[{"size": "1G", "offset": "8G"}])
    (problem,) = memmap.check_regions_inside_ram(context(prof))
    assert "puts RAM at 0-2G, 4G-6G" in problem.hint and "offset 4G up to 6G" in problem.hint


def test_ram_left_for_os():
    prof = profile(vm={"memory": "2G"}, pmem=[{"size": "1280M", "offset": "256M"}])
    assert "at least 1 GiB" in messages(checks.check_ram_left_for_os, prof)[0][1]


def test_kaslr_limit_is_a_warning_unless_nokaslr_given():
    regions = [{"size": "128M", "offset": f"{4096 + 128 * i}M"} for i in range(5)]
    assert messages(memmap.check_kaslr_region_limit, profile(pmem=regions))[0][2] == "warning"
    assert messages(memmap.check_kaslr_region_limit, profile(pmem=regions, kernel={"cmdline": ["nokaslr"]})) == []


@pytest.mark.parametrize("fs, kernel, ok", [("ext4", (5, 9, 0), True), ("ext4", (5, 8, 0), False),
                                            ("xfs", (5, 8, 0), True), ("xfs", (5, 4, 0), False)])
def test_dax_always_needs_a_tristate_kernel(fs, kernel, ok):
    prof = profile(pmem=[{"size": "1G", "offset": "4G", "filesystem": fs, "dax": "always"}])
    assert (messages(checks.check_dax_supported, prof, kernel) == []) == ok


def test_mountpoints():
    prof = profile(vm={"memory": "8G"}, pmem=[{"memmap": "1G!4G", "mountpoint": "/usr"},
                                             {"memmap": "1G!5G", "filesystem": "none", "mountpoint": "/x"}])
    found = messages(checks.check_mountpoints, prof)
    assert [f[0] for f in found] == [("pmem", 0, "mountpoint"), ("pmem", 1, "mountpoint")]


def test_default_mountpoints_follow_device_order():
    prof = profile(vm={"memory": "8G"}, pmem=[{"memmap": "1G!5G"}, {"memmap": "1G!4G"}])
    assert checks.default_mountpoints(prof) == {0: "/mnt/pmem1", 1: "/mnt/pmem0"}


def test_kernel_cmdline_owned_arguments():
    prof = profile(kernel={"cmdline": ["quiet", "root=/dev/sda1", "console=tty1", "memmap=1G!8G"]})
    assert [p[0] for p in messages(checks.check_kernel_cmdline, prof)] == [("kernel", "cmdline", 1),
                                                                            ("kernel", "cmdline", 2)]
    # memmap= belongs to the memmap backend, which owns it
    assert [p[0] for p in messages(memmap.check_memmap_not_in_cmdline, prof)] == [("kernel", "cmdline", 3)]


def test_fragments_must_exist(tmp_path: Path):
    (tmp_path / "pmem.config").write_text("# kernels: >=4.2\n# applies: always\nCONFIG_LIBNVDIMM=y\n")
    fragments = load_fragments(tmp_path)
    assert messages(checks.check_fragments_exist, profile(kernel={"fragments": ["pmem"]}), fragments=fragments) == []
    found = list(checks.check_fragments_exist(context(profile(kernel={"fragments": ["nope"]}), fragments=fragments)))
    assert "available: pmem" in found[0].hint


def test_struct_pages_of_pmem_count_against_the_os_ram():
    """6G of pmem in 7G of RAM leaves exactly 1 GiB by size, but its struct pages (96 MiB) come from RAM too."""
    prof = profile(vm={"memory": "7G"}, pmem=[{"size": "6G", "offset": "4G"}])
    (message,) = messages(checks.check_ram_left_for_os, prof)
    assert "struct pages 96 MiB" in message[1]
    assert messages(checks.check_ram_left_for_os, profile(vm={"memory": "7296M"},
                                                          pmem=[{"size": "6G", "offset": "4G"}])) == []


@pytest.mark.parametrize("size, ok", [("256M", False), ("384M", True)])
def test_xfs_needs_300_mib(size, ok):
    prof = profile(pmem=[{"size": size, "offset": "4G", "filesystem": "xfs"}])
    assert (messages(checks.check_xfs_minimum_size, prof) == []) == ok
    assert messages(checks.check_xfs_minimum_size, profile(pmem=[{"size": size, "offset": "4G"}])) == []


@pytest.mark.parametrize("mountpoint, ok", [
    ("/mnt/pmem0", True), ("/data", True), ("/srv/pmem", True), ("/home/dev/pmem", True),
    ("/etc/systemd", False), ("/var/lib/x", False), ("/usr/local", False), ("/boot/efi", False), ("/srv", False),
    ("/mnt", False)])
def test_mountpoints_under_system_trees(mountpoint, ok):
    prof = profile(pmem=[{"size": "1G", "offset": "4G", "mountpoint": mountpoint}])
    assert (messages(checks.check_mountpoints, prof) == []) == ok


@pytest.mark.parametrize("argument", ["mem=2G", "efi_fake_mem=1G@4G:0x40000", "pmem_image.selftest=1"])
def test_arguments_that_move_the_memory_map_are_refused(argument):
    found = messages(checks.check_kernel_cmdline, profile(kernel={"cmdline": ["quiet", argument]}))
    assert found and found[0][0] == ("kernel", "cmdline", 1) and found[0][2] == "error", found
    assert "is not allowed" in found[0][1]


def test_early_reservations_warn_only_with_a_region_below_4g():
    low = profile(pmem=[{"size": "512M", "offset": "2G"}], vm={"memory": "6G"},
                  kernel={"cmdline": ["crashkernel=256M", "hugepages=16"]})
    found = messages(checks.check_kernel_cmdline, low)
    assert [(path[-1], severity) for path, _, severity in found] == [(0, "warning"), (1, "warning")]
    assert not messages(checks.check_kernel_cmdline, profile(kernel={"cmdline": ["crashkernel=256M"]}))


def test_an_unproven_release_is_a_warning_and_a_proven_one_is_silent():
    ubuntu = profile(distribution={"name": "ubuntu", "release": "noble"})
    assert [(path, severity) for path, _, severity in messages(checks.check_release_is_proven, ubuntu)] == [
        (("distribution", "release"), "warning")]
    for release in ("bookworm", "trixie"):
        assert not messages(checks.check_release_is_proven,
                            profile(distribution={"name": "debian", "release": release}))


def test_each_release_brings_the_network_stack_it_has():
    """CentOS Stream has no systemd-networkd (EPEL only): its DHCP comes from NetworkManager; Fedora's
    networkd is a subpackage of its own; Debian's is part of systemd."""
    for distribution, release, service, package in (("centos", "9", "NetworkManager", "NetworkManager"),
                                                    ("fedora", "43", "systemd-networkd", "systemd-networkd"),
                                                    ("debian", "bookworm", "systemd-networkd", None)):
        plan, _ = plan_of_text(f"name: n\ndistribution: {{name: {distribution}, release: '{release}'}}\n"
                               "ssh: true\npmem:\n  - {size: 1G, offset: 4G}\n")
        assert plan.network == "dhcp" and plan.network_service == service
        assert package is None or package in plan.packages
        files = render(plan)
        preset = next(f.content for path, f in files.items() if path.endswith(".preset"))
        assert f"enable {service}.service" in preset
        assert any(p.endswith("80-pmem-image-dhcp.network") for p in files) == (service == "systemd-networkd")
