"""verify --cloud-init: the template provisioned as a cloud would do it. A NoCloud seed (a vfat disk
labelled CIDATA, made here, with user-data for a user and a throwaway SSH key) goes beside the disk; the
proof then logs in as that user, and boots the same overlay a second time to show that first-boot
provisioning does not run again."""

import time
from pathlib import Path

from ..plan.model import Plan
from ..runner import Runner
from .login import LOGIN_SECONDS, ssh_command
from .result import Check

CLOUD_USER = "cloudy"
RUNS = "/var/lib/pmem-image-cloud-init-runs"      # runcmd appends a line here: once per instance


def user_data(public_key: str) -> str:
    return f"""#cloud-config
users:
  - name: {CLOUD_USER}
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/sh
    ssh_authorized_keys: ["{public_key}"]
runcmd:
  - [sh, -c, "date +%s >> {RUNS}"]
"""


def make_seed(work: Path, plan: Plan, public_key: str, runner: Runner) -> Path:
    """A NoCloud seed: vfat, label CIDATA, user-data and meta-data at its root (mkfs.vfat and mcopy, no mount)."""
    (work / "user-data").write_text(user_data(public_key))
    (work / "meta-data").write_text(f"instance-id: pmem-image-verify-{plan.name}\nlocal-hostname: {plan.name}\n")
    seed = work / "cidata.img"
    seed.unlink(missing_ok=True)
    runner.capture(["mkfs.vfat", "-n", "CIDATA", "-C", str(seed), "2048"])
    runner.capture(["mcopy", "-i", str(seed), str(work / "user-data"), str(work / "meta-data"), "::"])
    return seed


def _ssh(port: int, key: Path, command: str, runner: Runner):
    return runner.query(ssh_command(port, CLOUD_USER, key, [command]), timeout=60)


def power_off(port: int, key: Path, process, runner: Runner, seconds: float = 120) -> None:
    """A clean shutdown, so what cloud-init wrote (its instance state) is on the disk for the next boot."""
    _ssh(port, key, "sudo systemctl poweroff", runner)
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(1)


def provisioning_check(port: int, key: Path, runner: Runner, boot: int) -> Check:
    """Log in as the user cloud-init made and count its runcmd runs: once, whichever boot this is."""
    deadline, result = time.monotonic() + LOGIN_SECONDS, None
    while time.monotonic() < deadline:
        result = _ssh(port, key, f"wc -l < {RUNS}", runner)
        if result.returncode == 0:
            break
        time.sleep(3)
    runs = result.stdout.strip() if result is not None and result.returncode == 0 else None
    name = "cloud-init user logs in, provisioned once" if boot == 1 else \
        "cloud-init second boot: not provisioned again"
    seen = runs if runs is not None else ((result.stderr.strip() if result else "") or "no login")[:200]
    return Check(name, runs == "1", f"boot {boot}: key login as {CLOUD_USER} (from the NoCloud user-data); "
                                    f"first-boot runcmd ran {seen} time(s)")
