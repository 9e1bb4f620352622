"""Rendering: golden trees for the shipped profiles, determinism, and escaping of hostile values."""

import os
import re

import pytest

from builder.render.escaping import RenderError, mkosi_value as _mkosi_value, plain_field as _plain_field, shell_checked as _shell_checked
from builder.render.outputs import render
from conftest import GOLDEN, PROFILES, plan_of_file, plan_of_text

SHIPPED = sorted(PROFILES.glob("*.yaml"))
UPDATE = os.environ.get("PMEM_IMAGE_UPDATE_GOLDEN") == "1"


def golden_files(files):
    # The flush test's source is copied verbatim; its own tests cover it.
    return {path: f.content for path, f in files.items() if not path.startswith("src/")}


@pytest.mark.parametrize("profile", SHIPPED, ids=lambda p: p.stem)
def test_rendered_tree_matches_golden(profile):
    plan, _ = plan_of_file(profile)
    files = golden_files(render(plan))
    root = GOLDEN / profile.stem
    if UPDATE:
        for path, content in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(content)
    on_disk = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(files), "set of rendered files changed (PMEM_IMAGE_UPDATE_GOLDEN=1 to accept)"
    for path, content in files.items():
        assert content == on_disk[path], f"{profile.stem}/{path} differs from golden"


@pytest.mark.parametrize("profile", SHIPPED, ids=lambda p: p.stem)
def test_rendering_is_deterministic(profile):
    first = render(plan_of_file(profile)[0])
    second = render(plan_of_file(profile)[0])
    assert first == second


def test_executables_and_tree_shape():
    files = render(plan_of_file(PROFILES / "default.yaml")[0])
    executable = {p for p, f in files.items() if f.executable}
    assert executable == {"mkosi.build.chroot", "mkosi.finalize", "mkosi.extra/usr/lib/pmem-image/pmem-mkfs",
                          "mkosi.extra/usr/lib/pmem-image/pmem-selftest", "mkosi.extra/usr/lib/pmem-image/pmem-layout-guard",
                          "mkosi.extra/usr/lib/pmem-image/pmem-test"}
    assert "mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources" in files
    assert files["mkosi.extra/etc/kernel/cmdline"].content == "console=tty0 console=ttyS0 rw systemd.firstboot=off memmap=1G!4G\n"


def test_percent_is_escaped_for_mkosi_and_kept_for_the_kernel():
    plan, _ = plan_of_text("name: p\ndistribution: {name: debian, release: bookworm}\n"
                           "kernel: {cmdline: ['a=50%']}\npmem: [{memmap: 1G!4G}]\n")
    files = render(plan)
    assert "a=50%" in files["mkosi.extra/etc/kernel/cmdline"].content
    assert "a=50%%" not in files["mkosi.extra/etc/kernel/cmdline"].content


def test_no_dead_boot_loader_configuration_is_shipped():
    """The image has no update-grub, so a grub.d default would claim what nothing does."""
    plan, _ = plan_of_file(PROFILES / "multi-region.yaml")
    assert not any("grub.d" in path for path in render(plan))


def test_fstab_has_one_line_per_mounted_region():
    plan, _ = plan_of_file(PROFILES / "multi-region.yaml")
    lines = [l for l in render(plan)["mkosi.extra/etc/fstab"].content.splitlines() if l and not l.startswith("#")]
    assert [l.split()[:3] for l in lines] == [["/dev/pmem0", "/mnt/pmem0", "ext4"], ["/dev/pmem1", "/mnt/pmem1", "xfs"]]
    assert all(len(l.split()) == 6 for l in lines)


@pytest.mark.parametrize("value", ["a#b", "a;b", "line\nExtraTrees=/", "\x00"])
def test_mkosi_values_refuse_comment_and_newline(value):
    with pytest.raises(RenderError):
        _mkosi_value(value)


def test_mkosi_value_escapes_percent():
    assert _mkosi_value("50%") == "50%%"


@pytest.mark.parametrize("value", ["a b", "x\ny", "", "\t"])
def test_plain_fields_refuse_whitespace(value):
    with pytest.raises(RenderError):
        _plain_field(value)


@pytest.mark.parametrize("value", ["$(reboot)", "a b", "`id`", "a;b", "'"])
def test_shell_templates_refuse_unquoted_values(value):
    with pytest.raises(RenderError):
        _shell_checked(value)


def test_no_template_interpolates_without_escaping():
    """Every {{ }} in a shell template goes through a quoting filter or is a plan-validated word."""
    from builder.render.outputs import _OUTPUTS
    from importlib import resources
    for output in _OUTPUTS:
        text = (resources.files("builder.render") / "templates" / output.template).read_text()
        for expression in re.findall(r"{{(.*?)}}", text):
            if output.finalize is not _shell_checked:
                continue
            last_filter = expression.split("|")[-1].strip() if "|" in expression else None
            # Only the quoting filters count: `| join` or `| lower` would leave the value unquoted.
            # region.device and user.name are words by their patterns (and the finalize refuses anything else).
            assert last_filter in ("shell", "shell_words") or expression.strip() in ("region.device", "user.name"), \
                f"{output.template}: {expression}"


def test_the_layout_guard_checks_every_region_against_the_firmware_ram(tmp_path):
    """Run the rendered guard with a stand-in dmesg: silent when the firmware's RAM holds every region, one
    clear line per region it cannot hold (exit 1) when the VM is not the one the image was built for."""
    import os
    import subprocess
    plan, _ = plan_of_file(PROFILES / "multi-region.yaml")
    (tmp_path / "guard").write_text(render(plan)["mkosi.extra/usr/lib/pmem-image/pmem-layout-guard"].content)
    (tmp_path / "dmesg").write_text("#!/bin/sh\ncat \"$FIRMWARE_MAP\"\n")
    (tmp_path / "dmesg").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "FIRMWARE_MAP": str(tmp_path / "map")}

    def guard(*lines: str):
        (tmp_path / "map").write_text("".join(f"[    0.000000] BIOS-e820: [mem {l.split()[0]}] {l.split()[1]}\n"
                                              for l in lines))
        return subprocess.run(["sh", str(tmp_path / "guard")], capture_output=True, text=True, env=env)

    six_gib = guard("0x0000000000000000-0x000000000009fbff usable", "0x0000000000100000-0x000000007ffdffff usable",
                    "0x00000000b0000000-0x00000000bfffffff reserved", "0x0000000100000000-0x000000017fffffff usable")
    assert six_gib.returncode == 0 and six_gib.stdout == ""
    two_gib = guard("0x0000000000000000-0x000000000009fbff usable", "0x0000000000100000-0x000000007ffdffff usable")
    assert two_gib.returncode == 1 and two_gib.stdout.count("cannot exist on this machine") == 2
    assert "guest RAM ends at 0x000000007ffdffff" in two_gib.stdout and "q35 VM with 6144M" in two_gib.stdout
    unknown = guard()
    assert unknown.returncode == 0 and "not checked" in unknown.stdout
