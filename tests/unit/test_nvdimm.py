"""The nvdimm backend: its rules, its plan, the QEMU devices and libvirt/launch contract, its state files."""

import os

import pytest

from builder.knowledge.kconfig import bundled_fragments_dir
from builder.plan.planner import make_plan
from builder.profile.errors import ProfileError, UsageError
from builder.profile.loader import profile_from_text
from builder.render.launch import launch_argv, machine_arguments
from builder.verify.qemu import prepare_state
from conftest import PROFILES, plan_of_file, plan_of_text

LAB = """
name: lab
distribution: {name: debian, release: trixie}
vm: {memory: 2G}
pmem_backend: nvdimm
pmem:
  - {size: 1G}
  - {size: 512M, label_size: 256K, mode: devdax}
"""


@pytest.fixture(scope="module")
def lab():
    return plan_of_text(LAB)[0]


def test_nvdimm_regions_have_no_address_and_are_numbered_as_given(lab):
    assert [(r.number, r.device, r.start, r.memmap, r.label_size) for r in lab.regions] == [
        (0, "pmem0", None, None, 128 << 10), (1, "dax1.0", None, None, 256 << 10)]
    assert not any(a.startswith("memmap=") for a in lab.kernel_cmdline) and "nokaslr" not in lab.kernel_cmdline
    # Namespaces live in the label area and are made at the first boot: always something for ndctl to do.
    assert all(r.reconfigure for r in lab.regions)
    assert lab.pmem_modules == ["nfit", "nd_pmem"] and "nvdimm" in lab.kernel_fragments
    assert {"ACPI_NFIT", "LIBNVDIMM"} <= set(lab.kernel_options)


def test_memmap_plans_keep_their_modules_and_addresses():
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    assert plan.pmem_modules == ["nd_e820", "nd_pmem"] and plan.regions[0].start == 4 << 30
    assert "nvdimm" not in plan.kernel_fragments and plan.regions[0].label_size is None


def test_qemu_gets_the_nvdimms_with_share_on_files_in_the_state_directory(lab, tmp_path):
    argv = machine_arguments(lab, tmp_path / "disk.qcow2", "tcg", state=tmp_path / "st,ate")
    assert argv[argv.index("-machine") + 1] == "q35,nvdimm=on"
    # maxmem: RAM 2G + 1G + 128K + 512M + 256K, rounded up to whole GiB; a slot per NVDIMM.
    assert argv[argv.index("-m") + 1] == "2048M,slots=2,maxmem=4096M"
    objects = [argv[i + 1] for i, a in enumerate(argv) if a == "-object"]
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert objects == [f"memory-backend-file,id=pmem0,share=on,mem-path={tmp_path}/st,,ate/nvdimm0.img,"
                       f"size={(1 << 30) + (128 << 10)}",
                       f"memory-backend-file,id=pmem1,share=on,mem-path={tmp_path}/st,,ate/nvdimm1.img,"
                       f"size={(512 << 20) + (256 << 10)}"]
    assert devices[:2] == ["nvdimm,id=nvdimm0,memdev=pmem0,label-size=131072",
                           "nvdimm,id=nvdimm1,memdev=pmem1,label-size=262144"]


def test_the_launch_contract_names_the_state_files(lab):
    argv = launch_argv(lab)
    assert any("mem-path=state/nvdimm0.img" in a for a in argv) and "-snapshot" in argv


def test_memmap_launch_is_unchanged():
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    argv = machine_arguments(plan, "disk.qcow2", "tcg")
    assert argv[argv.index("-machine") + 1] == "q35" and argv[argv.index("-m") + 1] == "4096M"
    assert "-object" not in argv


def test_state_files_are_made_sparse_and_a_wrong_size_is_refused(lab, tmp_path):
    state = prepare_state(lab, tmp_path / "state")
    first = state / "nvdimm0.img"
    assert first.stat().st_size == (1 << 30) + (128 << 10) and first.stat().st_blocks == 0
    first.write_bytes(b"labels and data")     # an existing file of the right size is kept as it is ...
    os.truncate(first, (1 << 30) + (128 << 10))
    prepare_state(lab, state)
    assert first.read_bytes()[:6] == b"labels"
    os.truncate(first, 1 << 30)               # ... one of another layout is refused, never resized
    with pytest.raises(UsageError, match="nvdimm0.img is 1073741824 bytes"):
        prepare_state(lab, state)
    assert first.stat().st_size == 1 << 30


def test_memmap_has_no_state_files(tmp_path):
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    prepare_state(plan, tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_nvdimm_pmem_is_not_taken_from_ram():
    """memmap pmem is carved out of vm.memory; an NVDIMM is memory beside it (only map: mem pages count)."""
    text = LAB.replace("memory: 2G", "memory: 1280M").replace("{size: 1G}", "{size: 1G, map: dev}")
    plan, _ = plan_of_text(text)
    assert plan.memory == 1280 << 20
    with pytest.raises(ProfileError, match="leaving"):
        plan_of_text(LAB.replace("memory: 2G", "memory: 1G"))   # 512M devdax map mem: 8 MiB of pages


def test_address_space_beyond_tcg_is_refused():
    with pytest.raises(ProfileError, match="beyond the 1T of guest physical addresses"):
        plan_of_text(LAB.replace("{size: 1G}", "{size: 1020G, map: dev}"))


def test_a_fragment_that_turns_off_nfit_is_named(tmp_path):
    fragments = tmp_path / "fragments"
    fragments.mkdir()
    for path in bundled_fragments_dir().glob("*.config"):
        (fragments / path.name).write_text(path.read_text())
    (fragments / "no-nfit.config").write_text("# kernels: >=4.2\n# applies: named\n# CONFIG_ACPI_NFIT is not set\n")
    profile, source = profile_from_text(LAB.replace("vm:", "kernel: {fragments: [no-nfit]}\nvm:"), "lab.yaml")
    with pytest.raises(ProfileError) as caught:
        make_plan(profile, "lab.yaml", source, fragments_dir=fragments)
    assert "fragment no-nfit turns off CONFIG_ACPI_NFIT" in caught.value.format()


def test_cloud_templates_warn_that_the_platform_has_no_nvdimm():
    _, warnings = plan_of_text(LAB + "formats: [qcow2, vhd]\n")
    assert [(w.path, w.severity) for w in warnings] == [(("formats", 1), "warning")]


def test_power_cycle_with_warm_reboot_is_refused_before_anything_is_written(lab, tmp_path):
    from builder.runner import Runner
    from builder.verify.boot import verify
    (tmp_path / "lab.raw").write_bytes(b"")
    with pytest.raises(UsageError, match="--power-cycle boots twice on its own"):
        verify(lab, tmp_path, Runner(), accel="tcg", power_cycle=True, warm_reboot=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.raw"]


def test_the_power_cycle_boots_ask_the_guest_to_seed_and_get_the_same_state(lab, tmp_path):
    from builder.verify.boot_request import BootRequest, qemu_argv
    argv = qemu_argv(BootRequest(lab, tmp_path / "o.qcow2", "tcg", "proof", tmp_path / "s", tmp_path / "r",
                                 state=tmp_path / "st", power_cycle=True))
    oem = argv[argv.index("-smbios") + 1]
    assert "value=pmem-image:power-cycle" in oem and "value=pmem-image:poweroff" in oem
    assert "-no-reboot" in argv and f"mem-path={tmp_path}/st/nvdimm1.img" in " ".join(argv)


def test_run_boots_the_nvdimms_from_its_state_directory(lab, tmp_path):
    from builder.verify.boot_request import BootRequest, qemu_argv
    argv = " ".join(qemu_argv(BootRequest(lab, tmp_path / "o.qcow2", "tcg", "interactive", state=tmp_path / "state",
                                          ssh_port=2222)))
    assert f"mem-path={tmp_path}/state/nvdimm0.img" in argv and "nvdimm=on" in argv


def test_more_than_two_nvdimms_are_refused_because_their_dev_names_cannot_be_planned():
    three = LAB + "  - {size: 256M, mode: devdax}\n"
    with pytest.raises(ProfileError, match="3 NVDIMMs: QEMU hands NVDIMMs to the guest's ACPI table in an order"):
        plan_of_text(three)
    assert len(plan_of_text(LAB)[0].regions) == 2
