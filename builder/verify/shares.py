"""What `pmem-image test` hands a guest (pure): the host directories it shares (9p, built into QEMU) and the
control share through which the guest's pmem-test reads the command and writes its output and status.

A shared directory is the user's own tree, shared read-write: QEMU's 9p server (security_model=none) keeps
the guest inside it and creates files as the user who runs pmem-image. The control share is a directory of
pmem-image's own; what the guest writes there is read back only as regular files, never followed."""

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..plan.model import Plan
from ..profile.errors import UsageError

DEFAULT_GUEST_DIRECTORY = "/src"
CONTROL_TAG = "pmem-image.control"
TEST_OEM_STRING = "pmem-image:test"
# Where a share would hide what the system needs to run the command.
_SYSTEM_DIRECTORIES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys",
                       "/usr", "/var")
_GUEST_PATH = re.compile(r"^(/[A-Za-z0-9._+-]+)+$")


@dataclass(frozen=True)
class Share:
    host: Path        # an existing directory on the host, absolute
    guest: str        # where the guest mounts it
    tag: str          # its 9p mount tag


def parse_shares(specs: list[str], plan: Plan, cwd: Path) -> list[Share]:
    """--share HOSTDIR[:GUESTDIR] values (none given: the current directory at /src), checked."""
    shares: list[Share] = []
    for number, spec in enumerate(specs or [f"{cwd}:{DEFAULT_GUEST_DIRECTORY}"]):
        host, guest = _split(spec)
        where = Path(host).expanduser()
        if not where.is_dir():
            raise UsageError(f"--share {spec}: {host} is not a directory on this host", "share an existing directory")
        _check_guest_directory(spec, guest, plan)
        if any(s.guest == guest for s in shares):
            raise UsageError(f"--share {spec}: {guest} is shared twice", "give each share its own GUESTDIR")
        shares.append(Share(where.resolve(), guest, f"pmem-image.share{number}"))
    return shares


def _split(spec: str) -> tuple[str, str]:
    """HOSTDIR[:GUESTDIR]; a colon is taken as the separator only when an absolute guest path follows it."""
    host, colon, guest = spec.rpartition(":")
    if colon and guest.startswith("/") and host:
        return host, guest
    return spec, DEFAULT_GUEST_DIRECTORY


def _check_guest_directory(spec: str, guest: str, plan: Plan) -> None:
    hint = "share it at a directory of its own, e.g. /src or /home/USER/work"
    if not _GUEST_PATH.match(guest) or any(part in (".", "..") for part in guest.split("/")):
        raise UsageError(f"--share {spec}: {guest!r} is not a plain absolute guest path (letters, digits, . _ + -)", hint)
    path = PurePosixPath(guest)
    for system in _SYSTEM_DIRECTORIES:
        if path == PurePosixPath(system) or PurePosixPath(system) in path.parents:
            raise UsageError(f"--share {spec}: {guest} is under {system}, which the guest needs for itself", hint)
    for region in plan.regions:
        if region.mountpoint and (path == PurePosixPath(region.mountpoint)
                                  or path in PurePosixPath(region.mountpoint).parents):
            raise UsageError(f"--share {spec}: {guest} would hide the pmem mount {region.mountpoint}", hint)


def choose_user(plan: Plan, requested: str | None) -> str:
    """Who runs the command: --user (a profile user or root), else the profile's first user, else root."""
    names = [u.name for u in plan.users]
    if requested is None:
        return names[0] if names else "root"
    if requested != "root" and requested not in names:
        raise UsageError(f"--user {requested}: {plan.name} has no such user (it has: {', '.join(['root', *names])})",
                         "give one of them, or add the user to the profile")
    return requested


def write_control(control: Path, command: list[str], user: str, cwd: str, shares: list[Share]) -> None:
    """The control share's files the guest reads: argv (NUL-separated), user, cwd, shares; and the empty
    stdout and stderr it appends to."""
    control.mkdir(parents=True, exist_ok=True)
    (control / "argv").write_bytes(b"".join(os.fsencode(word) + b"\0" for word in command))
    (control / "user").write_text(user + "\n")
    (control / "cwd").write_text(cwd + "\n")
    (control / "shares").write_text("".join(f"{s.tag} {s.guest}\n" for s in shares))
    for name in ("stdout", "stderr"):
        (control / name).write_bytes(b"")
