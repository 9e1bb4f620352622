"""pmem-image run and ssh: boot a built image by hand on the machine it was planned for, and log into it.

run keeps its state outside the build output (a rebuild replaces that whole), in OUT/.state/<name>/run/:
the copy-on-write overlay (discarded at the end unless --persist; kept aside, not reused, once the image
under it was rebuilt), a copy of the UEFI variables, the SSH key made for this boot (session-key; the
guest gets its public half as an SMBIOS OEM string) and state.json (pid, SSH port, login user, that key)
that ssh reads. NVDIMM backing files are in OUT/.state/<name>/pmem-LAYOUT/ (render/launch.py)."""

import json
import os
import shutil
from pathlib import Path
from typing import Optional

from ..plan.model import Plan
from ..profile.errors import UsageError
from ..profile.sizes import human_size
from ..build.locks import BuildLock
from ..build.manifest import read_manifest
from ..render.launch import STATE_DIRECTORY, instance_state, pmem_state_dir
from ..runner import Runner
from .boot import choose_accel
from .login import SSH_OPTIONS, throwaway_key
from .boot_request import BootRequest, qemu_argv
from .qemu import copy_ovmf_vars, free_port, make_overlay, prepare_state

STATE = "state.json"
SESSION_KEY = "session-key"     # out/NAME/run/session-key: made by `run`, removed when the guest stops


def login_user(plan: Plan) -> Optional[str]:
    """Who `ssh` logs in as by default: the first user (with the key `run` makes for the boot), else root
    when root has keys."""
    if plan.ssh and plan.users:
        return plan.users[0].name
    return "root" if plan.ssh and plan.root_ssh_keys else None


def banner(plan: Plan, port: int, persist: bool, state: Path = STATE_DIRECTORY) -> str:
    lines = [f"pmem-image run: {plan.name} ({plan.distribution} {plan.release}, {plan.machine}, {plan.firmware}, "
             f"{human_size(plan.memory)} RAM, {plan.cpus} CPUs)"]
    for region in plan.regions:
        where = f"{region.filesystem} on {region.mountpoint} ({region.dax_option})" if region.mountpoint else \
            "no filesystem"
        at = f"at {region.start:#x}" if region.start is not None else f"NVDIMM in {state}"
        lines.append(f"  /dev/{region.device}: {human_size(region.size)} {at}, {where}")
    user = login_user(plan)
    if plan.ssh and user:
        lines.append(f"  ssh: pmem-image ssh {plan.name}   (or: ssh -p {port} {user}@127.0.0.1)")
    elif plan.ssh:
        lines.append(f"  ssh: port {port} is forwarded, but the profile has no users and root has no keys")
    if plan.console_autologin:
        lines.append("  console: root logs in automatically")
    lines.append(f"  writes go to a copy-on-write overlay that is {'kept (--persist)' if persist else 'discarded'}; "
                 "Ctrl-A X quits QEMU")
    return "\n".join(lines)


def run(plan: Plan, directory: Path, runner: Runner, accel: str = "auto", ssh_port: Optional[int] = None,
        persist: bool = False, state: Optional[Path] = None) -> int:
    """The image booted by hand, under its output's lock held shared: no build swaps it away while it runs."""
    with BuildLock(directory.absolute().parent, directory.name, shared=True):
        return _run(plan, directory, runner, accel, ssh_port, persist, state)


def _run(plan: Plan, directory: Path, runner: Runner, accel: str, ssh_port: Optional[int], persist: bool,
         state: Optional[Path]) -> int:
    image = directory / f"{plan.name}.raw"
    if not image.exists():
        raise UsageError(f"no image at {image}", "build it first: pmem-image build PROFILE")
    work = run_dir(directory)
    session = work / STATE          # not `state`: that is --state, the NVDIMM files' directory
    if session.exists() and _alive(json.loads(session.read_text()).get("pid")):
        raise UsageError(f"{plan.name} is already running (see {session})", f"log in: pmem-image ssh {plan.name}")
    _keep_aside_if_rebuilt(work, directory, persist)      # (re)makes work/, bound to this image
    overlay = work / "overlay.qcow2"
    if not (persist and overlay.exists()):
        overlay.unlink(missing_ok=True)
        runner.run(make_overlay(image, overlay))     # the image itself is never written
    vars_file = work / "OVMF_VARS.fd"
    if plan.firmware == "uefi" and not (persist and vars_file.exists()):
        copy_ovmf_vars(vars_file)
    # NVDIMM backing files outlive every run (that is the point of them), --persist or not.
    state_dir = prepare_state(plan, state or pmem_state_dir(directory.parent, plan))
    _report_other_layouts(state_dir, state is None)
    port = ssh_port or free_port()
    accel = choose_accel(accel, directory, plan, runner)
    # A key for this boot only: the profile's users need no keys of their own for `pmem-image ssh`.
    key, public = throwaway_key(work, runner, SESSION_KEY) if plan.ssh and plan.users else (None, None)
    session.write_text(json.dumps({"pid": os.getpid(), "ssh_port": port, "user": login_user(plan),
                                   "identity": str(key) if key else None}) + "\n")
    print(banner(plan, port, persist, state_dir), flush=True)
    try:
        return runner.interactive(qemu_argv(BootRequest(
            plan, overlay, accel, "interactive", state=state_dir, ovmf_vars=vars_file if plan.firmware == "uefi" else None,
            ssh_port=port, ssh_key=public)))
    finally:
        session.unlink(missing_ok=True)
        for path in (key, key.with_name(key.name + ".pub")) if key else ():
            path.unlink(missing_ok=True)
        if not persist:
            overlay.unlink(missing_ok=True)
            vars_file.unlink(missing_ok=True)


def run_dir(directory: Path) -> Path:
    """OUT/.state/NAME/run for the build in OUT/NAME."""
    return instance_state(directory.parent, directory.name) / "run"


def _keep_aside_if_rebuilt(work: Path, directory: Path, persist: bool) -> None:
    """A persistent overlay belongs to the image it was made over: after a rebuild it is moved aside to
    run-OLDKEY/ (and said so), never reused over the new image nor deleted."""
    manifest = read_manifest(directory) or {}
    key = str(manifest.get("build_key", ""))
    bound = work / "image-key"
    old = bound.read_text().strip() if bound.is_file() else key
    if persist and (work / "overlay.qcow2").exists() and old != key:
        aside = work.with_name(f"run-{old[:16]}")
        number = 1
        while aside.exists():                 # an earlier one kept aside stays as it is
            number += 1
            aside = work.with_name(f"run-{old[:16]}-{number}")
        os.rename(work, aside)
        print(f"{directory.name} was rebuilt: the persistent overlay of the old image is kept in {aside}; "
              "this run starts from the new image", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    bound.write_text(key + "\n")


def _report_other_layouts(current: Path, default: bool) -> None:
    others = sorted(p.name for p in current.parent.glob("pmem-*") if p != current) if default else []
    if others:
        print(f"NVDIMM data of other pmem layouts is kept in {current.parent}: {', '.join(others)} "
              "(this layout uses a new, empty one)", flush=True)


def _alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ssh_argv(directory: Path, name: str, user: Optional[str], identity: Optional[Path], command: list[str]) -> list[str]:
    state_file = run_dir(directory) / STATE
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        raise UsageError(f"{name} is not running (no {state_file})", f"start it: pmem-image run {name}") from None
    login = user or state.get("user")
    if not login:
        raise UsageError(f"{name}'s profile has no users and no keys for root, so there is nobody to log in as",
                         "add a user (and ssh: true) to the profile, or pass --user")
    identity = identity or (Path(state["identity"]) if state.get("identity") else None)
    if shutil.which("ssh") is None:
        raise UsageError("ssh (the OpenSSH client) is not installed", "apt-get install openssh-client")
    return ["ssh", "-p", str(state["ssh_port"]), *SSH_OPTIONS,
            *(["-o", "IdentitiesOnly=yes", "-i", str(identity)] if identity else []),
            f"{login}@127.0.0.1", *command]
