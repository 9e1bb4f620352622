"""The proof's SSH row: verify hands the guest a throwaway key (an SMBIOS OEM string the self-test puts
under /run, never into the image), then logs in over the forwarded port as the profile's first user."""

import time
from pathlib import Path
from typing import Optional

from ..plan.model import Plan
from ..runner import Runner
from .proof import Check

LOGIN_SECONDS = 120
# Each boot makes new host keys (none are baked in), so there is nothing to pin them against.
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "ConnectTimeout=20"]
NON_INTERACTIVE = ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]


def wants_login(plan: Plan) -> Optional[str]:
    """The user verify logs in as: the first profile user, when the image has SSH."""
    return plan.users[0].name if plan.ssh and plan.users else None


def throwaway_key(work: Path, runner: Runner, name: str = "verify-key") -> tuple[Path, str]:
    """A new ed25519 key pair work/name (private) and work/name.pub; returns the private key's path and
    the public key."""
    key = work / name
    for old in (key, work / f"{name}.pub"):
        old.unlink(missing_ok=True)      # ssh-keygen would ask before overwriting
    runner.capture(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pmem-image-{name}", "-f", str(key)])
    return key, (work / f"{name}.pub").read_text().strip()


def ssh_command(port: int, user: str, key: Path, command: list[str]) -> list[str]:
    """A non-interactive key login to the guest's forwarded SSH port, running command."""
    return ["ssh", "-p", str(port), *SSH_OPTIONS, *NON_INTERACTIVE, "-i", str(key), f"{user}@127.0.0.1", *command]


def login_check(plan: Plan, user: str, port: int, key: Path, runner: Runner) -> Check:
    """Log in and read the first pmem mount's options (or just run `true`), retrying while sshd starts."""
    mount = next((r.mountpoint for r in plan.regions if r.mountpoint), None)
    command = ["findmnt", "-no", "OPTIONS", mount] if mount else ["true"]
    argv = ssh_command(port, user, key, command)
    deadline, result = time.monotonic() + LOGIN_SECONDS, None
    while time.monotonic() < deadline:
        result = runner.query(argv, timeout=60)
        if result.returncode == 0:
            break
        time.sleep(3)
    ok = result is not None and result.returncode == 0 and (mount is None or "dax" in result.stdout)
    seen = (result.stdout.strip() or result.stderr.strip())[:200] if result else "no attempt"
    if ok:
        return Check(f"ssh login as {user}", True, f"key login over 127.0.0.1:{port}; {' '.join(command)}: {seen}")
    return Check(f"ssh login as {user}", False, login_failure(result, command, mount))


def login_failure(result, command: list[str], mount: Optional[str]) -> str:
    """Why the SSH row failed, never empty: ssh's own error (it exits 255), or what the command said and its
    exit code once logged in (findmnt says nothing, exit 1, when nothing is mounted there)."""
    if result is None:
        return "no login was attempted"
    said = (result.stderr.strip() or result.stdout.strip())[:300]
    if result.returncode == 255:
        return f"no key login over SSH in {LOGIN_SECONDS}s: ssh: {said or 'no error text (sshd closed the connection)'}"
    if result.returncode == 0:
        return f"logged in, but {mount} is mounted without DAX: {result.stdout.strip() or '(no options)'}"
    if mount and command[0] == "findmnt" and not said:
        return f"logged in, but nothing is mounted at {mount} (findmnt exit {result.returncode})"
    return f"logged in, but {' '.join(command)} failed with exit {result.returncode}: {said or '(no output)'}"
