"""Builds with the stand-in mkosi (conftest.FAKE_MKOSI, the `env` fixture): started as a user would start
them, finished, and what they left. Shared by the build-safety, fault-injection and disk-full tests."""

import subprocess
import sys
import time
from pathlib import Path

from conftest import CLI_WITHOUT_ROOT_CHECK, PROFILES, ROOT


def build(env: dict, *extra: str, profile: Path = PROFILES / "default.yaml", **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, "build", str(profile), *extra], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out + err


def output(env: dict) -> Path:
    return Path(env["PMEM_IMAGE_OUT"]) / "default"


def wait_for(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def start_hanging_build(env: dict, *extra: str) -> subprocess.Popen:
    """A build whose mkosi hangs in 'Installing Debian' until it is stopped."""
    env["FAKE_MKOSI_MODE"] = "hang"
    process = build(env, *extra)
    wait_for(Path(env["FAKE_MKOSI_STATE"]) / "started")
    return process


def leftovers(env: dict) -> list[str]:
    return sorted(p.name for p in Path(env["PMEM_IMAGE_OUT"]).glob(".staging-*"))


def whole(directory: Path) -> bool:
    return subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=directory,
                          capture_output=True).returncode == 0


def gone(pid: int, seconds: float = 10) -> bool:
    """The process ended (and is not a zombie of ours) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False
