"""Host-side file errors are exit 3 with the path and what to do, not 'internal error' (review L1)."""

import errno

from builder.cli.main import main
from builder.profile.errors import os_error_text
from conftest import PROFILES


def test_rendering_where_nothing_can_be_written_is_exit_3_with_the_path(capsys):
    assert main(["render", str(PROFILES / "default.yaml"), "-o", "/proc/pmem-test"]) == 3
    err = capsys.readouterr().err
    assert "internal error" not in err and "/proc/" in err and "hint:" in err


def test_a_full_disk_says_so_and_how_to_free_space():
    text = os_error_text(OSError(errno.ENOSPC, "No space left on device", "/work/out/.staging-default-x/disk"))
    assert "No space left on device (/work/out/.staging-default-x/disk)" in text and "pmem-image gc" in text
