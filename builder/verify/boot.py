"""pmem-image verify: boot the built image in QEMU, read the guest's report, judge it."""

import json
import re
import shutil
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

from ..build.locks import BuildLock
from ..build.manifest import read_manifest
from ..plan.backends import backend_for
from ..plan.model import Plan
from ..profile.errors import UsageError
from ..runner import Runner, stop
from .proof import Check, checks_as_json, extract_report, judge
from .login import login_check, throwaway_key, wants_login
from .persistence_proof import power_cycle_checks
from .qemu import copy_ovmf_vars, kvm_works, make_overlay, prepare_state
from .cloud import CLOUD_USER, make_seed, power_off, provisioning_check
from .boot_request import BootRequest, qemu_argv
from .templates import boot_disk, root_disk_check
from .direct_boot import direct_boot_arguments
from .guest_process import qemu_said, spawn_guest

BOOT_TIMEOUT = {"kvm": 300, "tcg": 900}
POWEROFF_GRACE = 60


@dataclass
class VerifyResult:
    passed: bool
    checks: list[Check]
    accel: str
    seconds: float
    report_path: Path
    boot: str = "firmware"     # or "direct" (verify --fast: QEMU loaded the image's kernel itself)


def choose_accel(requested: str, directory: Path, plan: Plan, runner: Runner) -> str:
    if requested != "auto":
        return requested
    works, reason = kvm_works(directory / f"{plan.name}.vmlinuz", directory.parent / ".cache" / "kvm-probe.json",
                               runner)
    runner.say(f"KVM {'works' if works else 'not used'}: {reason}; using {'kvm' if works else 'tcg'}")
    return "kvm" if works else "tcg"


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _tail(text: str, count: int = 15) -> list[str]:
    return [l for l in text.splitlines() if l.strip()][-count:]


def qemu_ended(exit_code: int) -> str:
    """How QEMU ended, from its exit status: a signal (a crash, the OOM killer) is not a guest's power-off."""
    if exit_code < 0:
        try:
            return f"QEMU was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"QEMU was killed by signal {-exit_code}"
    return "QEMU exited (the guest powered off or reset)" if exit_code == 0 else f"QEMU exited with code {exit_code}"


def diagnose_missing_report(serial: str, seconds: float, exit_code: Optional[int],
                            qemu: Sequence[str] = ()) -> Check:
    """Say why no report came: QEMU refused to start, firmware/GRUB, kernel panic, self-test silent, QEMU
    ended early, or a hang. exit_code: QEMU's when it ended by itself (None: it still ran). qemu: the last lines
    QEMU wrote to stderr."""
    if exit_code is not None and qemu and not serial.strip():
        return Check("boot report", False, f"QEMU exited before the guest ran: {qemu[-1]}", list(qemu))
    if "Linux version" not in serial:
        return Check("boot report", False, "the kernel never started (firmware or GRUB problem)", _tail(serial))
    panic = [l for l in serial.splitlines() if "Kernel panic" in l or "end Kernel panic" in l]
    if panic:
        return Check("boot report", False, "the kernel panicked", panic + _tail(serial, 8))
    selftest = [l for l in serial.splitlines() if "pmem-selftest" in l or "self-test" in l]
    if "login:" in serial:
        return Check("boot report", False, "the system booted but the self-test wrote no report", selftest or _tail(serial))
    how = (f"{qemu_ended(exit_code)} after {seconds:.0f}s{': ' + qemu[-1] if qemu else ''}" if exit_code is not None
           else f"no report after {seconds:.0f}s: the boot hangs")
    return Check("boot report", False, how, _tail(serial) + list(qemu))


def relevant_lines(serial: str, limit: int = 20) -> list[str]:
    """Serial-log lines about pmem, DAX, mkfs and the filesystems: the evidence for a failed check."""
    words = {"pmem", "dax", "DAX", "mkfs", "EXT4-fs", "XFS", "memmap", "nd_"}
    return [l for l in serial.splitlines() if any(w in l for w in words)][-limit:]


def _built_kernel_release(directory: Path, plan: Plan) -> str:
    """The release of a kernel pmem-image built for this image ('' for the distribution's kernel)."""
    if plan.kernel_source == "distro":
        return ""
    return (read_manifest(directory) or {}).get("kernel_release", "")


def _await_report(process, serial_log: Path, report_log: Path, started: float, timeout: float) -> Optional[dict]:
    report = None
    while process is not None and time.monotonic() - started < timeout:
        report = extract_report(_read(report_log)) or extract_report(_read(serial_log))
        if report is not None or process.poll() is not None:
            break
        time.sleep(1)
    return report


def _first_of_power_cycle(argv: list[str], serial_log: Path, report_log: Path, qemu_log: Path, timeout: float,
                          runner: Runner) -> tuple[Optional[dict], float, Optional[int]]:
    """Boot 1 of --power-cycle: the guest reports, seeds its pmem mounts and powers off; QEMU exits. Its logs
    are kept as *-boot1.log. Returns (report, seconds, QEMU's exit code if it ended by itself, else None)."""
    started = time.monotonic()
    process = runner.spawn(argv, stderr_log=qemu_log)
    try:
        report = _await_report(process, serial_log, report_log, started, timeout)
        deadline = time.monotonic() + POWEROFF_GRACE
        while process is not None and report is not None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        exited = process.poll() if process is not None else None
    finally:
        if process is not None:
            stop(process)
    for log in (serial_log, report_log, qemu_log):
        if log.exists():
            log.replace(log.with_name(log.stem + "-boot1.log"))
    return report, time.monotonic() - started, exited


def verify(plan: Plan, directory: Path, runner: Runner, accel: str = "auto", timeout: float | None = None,
           warm_reboot: bool = False, export_format: Optional[str] = None, cloud_init: bool = False,
           power_cycle: bool = False, state: Optional[Path] = None, fast: bool = False) -> VerifyResult:
    """verify under the output's lock, held shared: no build or clean replaces it while it boots."""
    with BuildLock(directory.absolute().parent, directory.name, shared=True):
        return _verify(plan, directory, runner, accel, timeout, warm_reboot, export_format, cloud_init,
                       power_cycle, state, fast)


def _verify(plan: Plan, directory: Path, runner: Runner, accel: str, timeout: float | None, warm_reboot: bool,
            export_format: Optional[str], cloud_init: bool, power_cycle: bool, state: Optional[Path],
            fast: bool) -> VerifyResult:
    """Boot the image (or with export_format, that export on its platform's bus) and judge its report.
    power_cycle: boot, seed, power off, then boot the same disk and state files in a new QEMU process.
    state: the directory of the NVDIMM backing files (default: new ones in the verify directory).
    fast: QEMU boots the kernel, initrds and command line of the disk's boot entry itself (no firmware disk
    boot, no GRUB); every row but the boot path's own is the same."""
    image = directory / f"{plan.name}.raw"
    if not image.exists():
        raise UsageError(f"no image at {image}", "build it first: pmem-image build PROFILE")
    if cloud_init and not plan.cloud_init:
        raise UsageError(f"{plan.name} was built without cloud-init", "add cloud_init: true to the profile")
    if power_cycle and (warm_reboot or cloud_init):
        raise UsageError("--power-cycle boots twice on its own", "use it without --warm-reboot and --cloud-init")
    devdax = [f"/dev/{r.device}" for r in plan.regions if r.mode == "devdax"]
    if state is not None and devdax:
        # The device DAX rows write at the start of the device: on a lab's own NVDIMM files that is its data (M5).
        raise UsageError(f"the proof writes 16 MiB at the start of {', '.join(devdax)}: on the NVDIMM files in "
                         f"{state} that would overwrite what the lab keeps there",
                         f"verify a copy: cp --sparse=always {state}/*.img COPY/ && pmem-image verify --state COPY "
                         f"{plan.name} (or verify without --state, on fresh NVDIMM files)")
    if fast and export_format:
        raise UsageError("--fast boots the raw disk's kernel directly; an export is proven on its platform's firmware "
                         "and bus", "drop --fast to boot the export, or --format to boot the raw disk fast")
    work = directory / "verify"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    state = prepare_state(plan, state or work / "state")
    disk, disk_format, bus = boot_disk(plan, directory, work, export_format, runner)
    serial_log, report_log, overlay = work / "serial.log", work / "report.log", work / "overlay.qcow2"
    qemu_log = work / "qemu.log"      # QEMU's own stderr: why it exited, when it does
    accel = choose_accel(accel, directory, plan, runner)
    timeout = timeout or BOOT_TIMEOUT[accel] * (2 if warm_reboot else 1)
    runner.run(make_overlay(disk, overlay, disk_format))   # the image itself is never written
    direct = direct_boot_arguments(image, work, runner) if fast else None
    vars_file = copy_ovmf_vars(work / "OVMF_VARS.fd") if plan.firmware == "uefi" and not fast else None
    user = CLOUD_USER if cloud_init else wants_login(plan)
    key, public = throwaway_key(work, runner) if user and not runner.dry_run else (None, "")
    seed = make_seed(work, plan, public, runner) if cloud_init and not runner.dry_run else None
    # The boot every start below makes: the proof on this disk, bus and state (and a login when the plan has one).
    request = BootRequest(plan, overlay, accel, "proof", serial_log, report_log, bus, state, vars_file,
                          tuple(direct) if direct else None, warm_reboot, power_cycle, ssh_key=public if user else None,
                          seed=seed)
    first: Optional[dict] = None
    first_seconds, first_exit = 0.0, None     # first_exit: the first QEMU's exit code when it ended by itself
    if power_cycle:
        runner.say("power-cycle: first boot (report, seed the pmem mounts, power off)")
        first, first_seconds, first_exit = _first_of_power_cycle(
            qemu_argv(replace(request, ssh_key=None)), serial_log, report_log, qemu_log, timeout, runner)
        ended = qemu_ended(first_exit) if first_exit is not None else "QEMU was stopped"
        runner.say(f"power-cycle: first boot {'reported' if first else 'gave no report'}; {ended} after "
                   f"{first_seconds:.0f}s; " + ("booting the same disk in a new QEMU process" if first else
                                                "no second boot"))

    def argv_for(port: int) -> list[str]:
        return qemu_argv(replace(request, ssh_port=port if user else None))
    started = time.monotonic()
    process, port = (spawn_guest(runner, argv_for, bool(user), qemu_log) if first is not None or not power_cycle
                     else (None, 0))
    report, login, cloud = None, None, []
    boot_seconds, exit_code = 0.0, None      # exit_code: QEMU's when it ended by itself
    try:
        report = _await_report(process, serial_log, report_log, started, timeout)
        boot_seconds = time.monotonic() - started
        # Whether QEMU ended by itself, read before stop() below reaps it (after that it always has).
        exit_code = process.poll() if process is not None else None
        if report is not None and process is not None and user and key is not None:
            runner.say(f"report received after {boot_seconds:.0f}s; logging in as {user} over SSH")
            login = login_check(plan, user, port, key, runner)
            if cloud_init:
                cloud = [provisioning_check(port, key, runner, 1)]
                runner.say("booting the same disk again: cloud-init must not provision it a second time")
                power_off(port, key, process, runner)
                stop(process)
                shutil.copyfile(serial_log, work / "serial-boot1.log")    # the second boot starts the log anew
                process, port = spawn_guest(runner, argv_for, True, qemu_log)
                cloud.append(provisioning_check(port, key, runner, 2))
        elif report is not None and process is not None:
            runner.say(f"report received after {boot_seconds:.0f}s; waiting for the guest to power off")
            deadline = time.monotonic() + POWEROFF_GRACE
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(1)
    finally:
        if process is not None:
            stop(process)
            overlay.unlink(missing_ok=True)
    if power_cycle and first is None:    # nothing for a second boot to compare with: say why the first failed
        boot_seconds, serial_log, qemu_log = first_seconds, work / "serial-boot1.log", work / "qemu-boot1.log"
        exit_code = first_exit
    serial = _read(serial_log)
    release = _built_kernel_release(directory, plan)
    checks = judge(plan, first if power_cycle else report, release, warm_reboot)
    if power_cycle and first is not None:
        checks += power_cycle_checks(plan, report, backend_for(plan.pmem_backend).expectations(plan),
                                     lambda p, r: judge(p, r, release), first)
    report = first if power_cycle and report is None else report
    if export_format and report is not None:
        checks.insert(1, root_disk_check(disk, disk_format, bus, report))
    if user and report is not None:
        checks.append(login or Check(f"ssh login as {user}", False, "QEMU exited before the login"))
        checks += cloud
    if report is None:
        checks[0] = diagnose_missing_report(serial, boot_seconds, exit_code, qemu_said(qemu_log))
    else:
        failed = [c for c in checks if not c.passed]
        for check in failed:
            check.evidence = check.evidence or relevant_lines(serial)
    passed = all(c.passed for c in checks)
    result_path = work / "report.json"
    result_path.write_text(json.dumps({
        "name": plan.name, "plan_hash": plan.digest(), "passed": passed, "accel": accel,
        "boot": "direct" if fast else "firmware", "warm_reboot": warm_reboot,
        "power_cycle": power_cycle, "first_boot_seconds": round(first_seconds, 1) if power_cycle else None,
        "first_boot_report": first,
        "disk": {"file": disk.name, "format": disk_format, "bus": bus, "export": export_format},
        "boot_seconds": round(boot_seconds, 1), "checks": checks_as_json(checks), "guest_report": report,
    }, indent=2) + "\n")
    return VerifyResult(passed, checks, accel, boot_seconds, result_path, "direct" if fast else "firmware")


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Guest text for a terminal: C0/C1 control characters (escape sequences included) shown as '?', so a
    verified image cannot drive the user's terminal."""
    return _UNPRINTABLE.sub("?", text)


def checks_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    for check in checks:
        lines.append(f"{check.name:<{width}}  {'PASS' if check.passed else 'FAIL':<6}  {printable(check.detail)}")
        if not check.passed:
            lines += [f"{'':<{width}}          | {printable(line)}" for line in check.evidence]
    return "\n".join(lines)
