"""Edges of verify: hostile paths and guest text cannot reach QEMU's options or the user's terminal."""

from pathlib import Path

from builder.verify.boot import checks_table
from builder.verify.proof import Check
from builder.verify.boot_request import BootRequest, qemu_argv
from conftest import PROFILES, plan_of_file


def test_a_comma_in_an_output_path_cannot_add_qemu_options(tmp_path: Path):
    plan, _ = plan_of_file(PROFILES / "debian-xfs-uefi.yaml")
    odd = tmp_path / "out,readonly=on,if=none"
    argv = qemu_argv(BootRequest(plan, odd / "overlay.qcow2", "tcg", "proof", odd / "serial.log", odd / "report.log",
                                 ovmf_vars=odd / "VARS.fd", seed=odd / "seed.img"))
    text = " ".join(argv)
    assert "out,,readonly=on,,if=none/overlay.qcow2,format=qcow2" in text
    assert "path=" + str(odd).replace(",", ",,") + "/serial.log" in text
    assert "unit=1,file=" + str(odd).replace(",", ",,") + "/VARS.fd" in text
    assert "file=" + str(odd).replace(",", ",,") + "/seed.img,format=raw,readonly=on,if=virtio" in text
    assert not any(a.startswith("file:") for a in argv)   # chardev paths go through path=, escaped


def test_guest_text_reaches_the_terminal_without_control_characters():
    evil = "pmem0 ok\x1b]0;owned\x07\x1b[2J\x9b31m"
    table = checks_table([Check("x", False, evil, [evil])])
    assert "\x1b" not in table and "\x07" not in table and "\x9b" not in table and "pmem0 ok" in table


def test_the_image_build_has_no_werror_but_the_host_build_does():
    from builder.native import FLUSH_TEST_CFLAGS, HOST_CFLAGS
    from builder.render.outputs import render
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    assert "-Werror" not in render(plan)["mkosi.build.chroot"].content and "-Werror" not in FLUSH_TEST_CFLAGS
    assert "-Werror" in HOST_CFLAGS
