"""pmem-image test's pure parts: --share values (defaults, the colon rule, guest paths refused where they would
hide the system or a pmem mount, duplicates), who runs the command, the control files and QEMU's 9p devices."""

import os
from pathlib import Path

import pytest

from builder.profile.errors import UsageError
from conftest import PROFILES, plan_of_file
from builder.verify.boot_request import BootRequest, qemu_argv
from builder.verify.shares import choose_user, parse_shares, write_control
from builder.verify.testrun import read_small


@pytest.fixture(scope="module")
def plan():
    return plan_of_file(PROFILES / "default.yaml")[0]         # /mnt/pmem0, no users


def test_no_share_is_the_current_directory_at_src(plan, tmp_path):
    [share] = parse_shares([], plan, tmp_path)
    assert (share.host, share.guest, share.tag) == (tmp_path.resolve(), "/src", "pmem-image.share0")


def test_a_colon_separates_only_before_an_absolute_guest_path(plan, tmp_path):
    odd = tmp_path / "a:b"
    odd.mkdir()
    assert parse_shares([str(odd)], plan, tmp_path)[0].host == odd.resolve()
    assert parse_shares([f"{odd}:/work"], plan, tmp_path)[0].guest == "/work"


@pytest.mark.parametrize("guest", ["/", "/usr", "/etc/x", "/dev", "/var/lib/y", "/mnt/pmem0", "/mnt", "/src/../etc",
                                   "/with space", "relative"])
def test_guest_paths_that_would_hide_the_system_or_pmem_are_refused(plan, tmp_path, guest):
    with pytest.raises(UsageError) as error:
        parse_shares([f"{tmp_path}:{guest}"] if guest.startswith("/") else [f"{tmp_path}:/{guest} x"], plan, tmp_path)
    assert "--share" in error.value.message


def test_a_missing_host_directory_and_a_guest_path_shared_twice_are_refused(plan, tmp_path):
    with pytest.raises(UsageError, match="not a directory"):
        parse_shares([f"{tmp_path}/missing:/src"], plan, tmp_path)
    with pytest.raises(UsageError, match="shared twice"):
        parse_shares([f"{tmp_path}:/a", f"{tmp_path}:/a"], plan, tmp_path)
    assert [s.tag for s in parse_shares([f"{tmp_path}:/a", f"{tmp_path}:/mnt/pmem0/inside"], plan, tmp_path)] == \
        ["pmem-image.share0", "pmem-image.share1"]


def test_the_command_runs_as_the_first_user_else_root(plan):
    assert choose_user(plan, None) == "root" and choose_user(plan, "root") == "root"
    lab = plan_of_file(PROFILES / "nvdimm-lab.yaml")[0]        # users: dev
    assert choose_user(lab, None) == "dev" and choose_user(lab, "root") == "root"
    with pytest.raises(UsageError, match="no such user"):
        choose_user(lab, "mallory")


def test_control_files_and_qemu_devices(plan, tmp_path):
    shares = parse_shares([f"{tmp_path}:/src"], plan, tmp_path)
    control = tmp_path / "control"
    write_control(control, ["sh", "-c", "echo 'a b'", ""], "dev", "/src", shares)
    assert (control / "argv").read_bytes() == b"sh\0-c\0echo 'a b'\0\0"
    assert (control / "shares").read_text() == "pmem-image.share0 /src\n"
    assert (control / "stdout").read_bytes() == b""
    argv = qemu_argv(BootRequest(plan, tmp_path / "o.qcow2", "tcg", "test", tmp_path / "c", tmp_path / "r",
                                 control=Path("/w,x/control"), shares=tuple(shares)))
    # asked to run the command, and nothing else (no self-test, no power-off of its own)
    assert argv[argv.index("-smbios") + 1] == "type=11,value=pmem-image:test" and argv.count("-smbios") == 1
    assert "local,id=fs0,path=/w,,x/control,security_model=none" in argv
    assert "virtio-9p-pci,fsdev=fs1,mount_tag=pmem-image.share0" in argv


def test_what_the_guest_wrote_is_read_only_as_a_regular_file(tmp_path):
    (tmp_path / "status").write_text("exit 3\n")
    (tmp_path / "link").symlink_to(tmp_path / "status")
    os.mkfifo(tmp_path / "fifo")
    assert read_small(tmp_path / "status") == "exit 3\n"
    assert read_small(tmp_path / "link") is None and read_small(tmp_path / "fifo") is None
