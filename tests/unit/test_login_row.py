"""A failing SSH row says why (issue 22: it failed after 120 s with an empty reason)."""

import subprocess

from builder.verify.login import login_failure

FINDMNT = ["findmnt", "-no", "OPTIONS", "/mnt/pool"]


def done(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], code, out, err)


def test_each_failure_has_its_reason():
    assert "Connection refused" in login_failure(done(255, err="ssh: connect to host 127.0.0.1 port 2222: "
                                                                  "Connection refused"), FINDMNT, "/mnt/pool")
    assert "sshd closed the connection" in login_failure(done(255), FINDMNT, "/mnt/pool")
    assert login_failure(done(1), FINDMNT, "/mnt/pool") == \
        "logged in, but nothing is mounted at /mnt/pool (findmnt exit 1)"
    assert "mounted without DAX: rw,relatime" in login_failure(done(0, "rw,relatime\n"), FINDMNT, "/mnt/pool")
    assert "failed with exit 127: sh: 1: findmnt: not found" in login_failure(
        done(127, err="sh: 1: findmnt: not found"), FINDMNT, "/mnt/pool")
    assert login_failure(None, FINDMNT, "/mnt/pool") == "no login was attempted"
