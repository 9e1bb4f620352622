"""Namespace modes and PMDK, before any boot: what a mode defaults to, what the plan and the rendered tree
make of it, and the rules a profile must keep (the invalid fixtures hold the messages with line numbers)."""

import pytest

from builder.knowledge.distros import find_release
from builder.knowledge.kconfig import bundled_fragments_dir, load_fragments
from builder.knowledge.namespaces import device_name
from builder.plan import mode_checks
from builder.plan.checks import CheckContext
from builder.profile.model import PmemRegion, Profile
from builder.render.outputs import render
from conftest import PROFILES, plan_of_file

NAMESPACES = "mkosi.extra/usr/lib/pmem-image/pmem-namespaces"


@pytest.mark.parametrize("mode, fs, pages, device", [
    ("fsdax", "ext4", "mem", "pmem2"), ("devdax", "none", "mem", "dax2.0"),
    ("sector", "ext4", None, "pmem2s"), ("raw", "none", None, "pmem2")])
def test_each_mode_has_its_defaults_and_device(mode, fs, pages, device):
    region = PmemRegion(size="1G", offset="4G", mode=mode)
    assert (region.fs, region.struct_pages, device_name(mode, 2)) == (fs, pages, device)


def test_the_plan_names_devices_and_says_which_regions_ndctl_changes():
    plan = plan_of_file(PROFILES / "pmem-modes.yaml")[0]
    assert [(r.device, r.mode, r.map, r.reconfigure, r.mountpoint) for r in plan.regions] == [
        ("pmem0", "fsdax", "dev", True, "/mnt/pmem0"), ("dax1.0", "devdax", "mem", True, None),
        ("pmem2s", "sector", None, True, "/mnt/pmem2s"), ("pmem3", "raw", None, True, None)]
    sector = plan.regions[2]
    assert sector.dax_option is None and "dax" not in " ".join(sector.mount_options)
    assert "daxctl" in plan.packages


def test_the_namespace_script_is_rendered_only_for_regions_that_change():
    default = render(plan_of_file(PROFILES / "default.yaml")[0])
    assert NAMESPACES not in default
    assert "pmem-namespaces.service" not in default["mkosi.extra/usr/lib/systemd/system-preset/50-pmem-image.preset"].content
    files = render(plan_of_file(PROFILES / "pmdk-dev.yaml")[0])
    script = files[NAMESPACES].content
    assert "setup dax1.0 0x180000000 devdax dev" in script and "setup pmem0" not in script   # pmem0 boots as planned
    assert "enable pmem-namespaces.service" in files["mkosi.extra/usr/lib/systemd/system-preset/50-pmem-image.preset"].content
    assert "After=dev-%i.device pmem-namespaces.service" in files[
        "mkosi.extra/usr/lib/systemd/system/pmem-mkfs@.service"].content


def test_pmdk_brings_its_packages_its_check_and_its_build():
    plan = plan_of_file(PROFILES / "pmdk-dev.yaml")[0]
    assert plan.pmdk and {"libpmemobj-dev", "libpmem2-dev", "pmdk-tools", "daxctl", "gcc"} <= set(plan.packages)
    assert {"libpmemobj-dev", "libpmem2-dev"} <= set(plan.build_packages)
    files = render(plan)
    assert "src/pmem-pmdk-check.c" in files
    assert 'pmem-pmdk-check.c" -lpmemobj -lpmem2 -lpmem' in files["mkosi.build.chroot"].content
    plain = render(plan_of_file(PROFILES / "default.yaml")[0])
    assert "src/pmem-pmdk-check.c" not in plain and "-lpmem" not in plain["mkosi.build.chroot"].content


def context(profile: Profile, kernel=(6, 1, 0)) -> CheckContext:
    release = find_release(profile.distribution.name, profile.distribution.release)
    return CheckContext(profile, kernel, release, load_fragments(bundled_fragments_dir()), "memmap")


def devdax_profile(size: str, offset: str = "4G") -> Profile:
    return Profile.model_validate({"name": "d", "distribution": {"name": "debian", "release": "bookworm"},
                                   "pmem": [{"size": size, "offset": offset, "mode": "devdax"}]})


def test_devdax_must_be_a_multiple_of_its_alignment_whatever_the_backend():
    assert list(mode_checks.check_devdax(context(devdax_profile("1G")))) == []
    problems = list(mode_checks.check_devdax(context(devdax_profile("129M", "4097M"))))
    assert [p.path for p in problems] == [("pmem", 0, "offset"), ("pmem", 0, "size")]
    assert "not a multiple of 2M, the device's alignment" in problems[1].message


def aligned_profile(align, mode: str = "devdax", size: str = "256M") -> Profile:
    return Profile.model_validate({"name": "d", "distribution": {"name": "debian", "release": "bookworm"},
                                   "pmem": [{"size": size, "offset": "4G", "mode": mode, "align": align}]})


def test_a_device_dax_may_be_4k_or_2m_aligned_and_nothing_else():
    assert list(mode_checks.check_devdax(context(aligned_profile("4K")))) == []
    assert list(mode_checks.check_devdax(context(aligned_profile("2M")))) == []
    for align in ("1G", "64K", "3M"):
        (problem,) = mode_checks.check_devdax(context(aligned_profile(align)))
        assert problem.path == ("pmem", 0, "align") and "aligned to 4K or 2M" in problem.message, align


def test_align_belongs_to_device_dax_alone():
    (problem,) = mode_checks.check_align_mode(context(aligned_profile("4K", mode="fsdax")))
    assert problem.path == ("pmem", 0, "align") and "only a device DAX" in problem.message
    assert list(mode_checks.check_align_mode(context(aligned_profile("4K")))) == []


def test_the_test_bench_plans_two_4k_and_two_2m_device_dax_and_ndctl_is_told_so():
    for name in ("pmdk-testbench.yaml",):
        plan = plan_of_file(PROFILES / name)[0]
        assert [(r.device, r.align) for r in plan.regions] == [
            ("pmem0", None), ("dax1.0", 4096), ("dax2.0", 4096), ("dax3.0", 2 << 20), ("dax4.0", 2 << 20)]
        script = render(plan)[NAMESPACES].content
        assert "devdax mem 4096" in script and "devdax mem 2097152" in script and 'printf \'%s\\n\' "--align=$3"' in script
    # Without align, a device DAX is still planned (and checked) at ndctl's default.
    assert plan_of_file(PROFILES / "pmdk-dev.yaml")[0].regions[1].align == 2 << 20


def test_users_get_the_pmem_group_and_pmdk_images_their_test_configuration():
    bench = render(plan_of_file(PROFILES / "pmdk-testbench.yaml")[0])
    assert "groupadd --system pmem" in bench["mkosi.postinst.chroot"].content
    assert 'GROUP="pmem", MODE="0660"' in bench["mkosi.extra/usr/lib/udev/rules.d/60-pmem-image-access.rules"].content
    ready = bench["mkosi.extra/usr/lib/systemd/system/pmem-ready.target"].content
    assert "Requires=pmem-access.service" in ready and "Requires=pmem-pmdk-testconfig.service" in ready
    testconfig = bench["mkosi.extra/usr/lib/pmem-image/pmdk-testconfig"].content
    assert "for mountpoint in /mnt/pmem0 \"\"; do" in testconfig and "ndctl list -X" in testconfig
    preset = bench["mkosi.extra/usr/lib/systemd/system-preset/50-pmem-image.preset"].content
    assert "enable pmem-access.service" in preset and "enable pmem-pmdk-testconfig.service" in preset
    plain = render(plan_of_file(PROFILES / "default.yaml")[0])     # no users, no PMDK: none of it
    assert not [path for path in plain if "pmem-access" in path or "pmdk-testconfig" in path]
    assert "pmem-access.service" not in plain["mkosi.extra/usr/lib/systemd/system/pmem-ready.target"].content


def test_devdax_needs_a_kernel_with_device_dax_through_ndctl():
    (problem,) = mode_checks.check_devdax(context(devdax_profile("1G"), (4, 9, 0)))
    assert "needs kernel >= 4.10" in problem.message


def test_a_filesystem_written_as_none_is_allowed_on_devdax_and_raw():
    for mode in ("devdax", "raw"):
        profile = Profile.model_validate({"name": "d", "distribution": {"name": "debian", "release": "bookworm"},
                                          "pmem": [{"size": "1G", "offset": "4G", "mode": mode, "filesystem": "none"}]})
        assert list(mode_checks.check_mode_filesystem(context(profile))) == []


def test_pmdk_is_known_where_the_release_record_carries_it():
    assert find_release("debian", "trixie").packages.pmdk and find_release("debian", "bookworm").packages.pmdk
    assert not find_release("ubuntu", "noble").packages.pmdk and not find_release("centos", "9").packages.pmdk
