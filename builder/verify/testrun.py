"""pmem-image test: boot a built image on a throwaway overlay, share host directories with it, run one command
there once its pmem is ready (pmem-ready.target), stream the command's stdout and stderr here, power the guest
off and give back the command's exit code.

The guest needs no SSH, network or key: QEMU hands it the OEM string pmem-image:test and a 9p control share
(shares.py); the image's pmem-test runs the command and writes its output and "exit N" there. The work
directory (overlay, fresh NVDIMM files unless --state, the control share) is OUT/.state/NAME/test/test-*/,
removed at the end."""

import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional

from ..build.locks import BuildLock
from ..plan.model import Plan
from ..profile.errors import PmemImageError, UsageError
from ..render.launch import instance_state
from ..runner import Runner, stop
from .boot import BOOT_TIMEOUT, choose_accel
from .direct_boot import direct_boot_arguments
from .boot_request import BootRequest, qemu_argv
from .qemu import copy_ovmf_vars, make_overlay, prepare_state
from .shares import Share, write_control

EXIT_TIMED_OUT = 124        # as timeout(1)
POLL_SECONDS = 0.1
POWEROFF_SECONDS = 30
_CHUNK = 1 << 20
_KEPT = 64 << 10           # the end of each stream kept for --junit


@dataclass
class TestResult:
    status: str                     # "exit" (the command ran), "timeout"
    exit_code: int
    boot_seconds: float             # QEMU start to the command's start
    command_seconds: float
    accel: str
    boot: str                       # "direct" (QEMU loads the kernel) or "firmware"
    tails: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Stream:
    path: Path
    out: BinaryIO
    offset: int = 0
    kept: bytearray = field(default_factory=bytearray)

    def pump(self) -> None:
        """Copy what the guest appended since the last call; only a regular file is read (the guest made it)."""
        handle = _open_regular(self.path)
        if handle is None:
            return
        with handle:
            handle.seek(self.offset)
            while chunk := handle.read(_CHUNK):
                self.offset += len(chunk)
                self.out.write(chunk)
                self.kept = (self.kept + chunk)[-_KEPT:]
            self.out.flush()


def _open_regular(path: Path) -> Optional[BinaryIO]:
    """A file the guest wrote, opened only if it is a regular file: never through a symlink, never blocking
    on a FIFO it put there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_small(path: Path, limit: int = 4096) -> Optional[str]:
    """A small regular file the guest wrote, or None."""
    handle = _open_regular(path)
    if handle is None:
        return None
    with handle:
        return handle.read(limit).decode(errors="replace")


def run_test(plan: Plan, directory: Path, command: list[str], user: str, shares: list[Share], runner: Runner,
             accel: str = "auto", timeout: Optional[float] = None, state: Optional[Path] = None) -> TestResult:
    """Under the output's lock, held shared (a build does not replace the image while it runs)."""
    image = directory / f"{plan.name}.raw"
    if not image.exists():
        raise UsageError(f"no image at {image}", f"build it first: pmem-image build {plan.name}")
    with BuildLock(directory.absolute().parent, directory.name, shared=True):
        parent = instance_state(directory.absolute().parent, directory.name) / "test"
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="test-", dir=parent))
        try:
            return _boot_and_run(plan, image, work, command, user, shares, runner, accel, timeout, state)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _boot_and_run(plan: Plan, image: Path, work: Path, command: list[str], user: str, shares: list[Share],
                  runner: Runner, accel: str, timeout: Optional[float], state: Optional[Path]) -> TestResult:
    control = work / "control"
    write_control(control, command, user, shares[0].guest if shares else "/", shares)
    state_dir = prepare_state(plan, state or work / "state")
    overlay = work / "overlay.qcow2"
    runner.run(make_overlay(image, overlay))          # the image itself is never written
    accel = choose_accel(accel, image.parent, plan, runner)
    try:
        direct: Optional[list[str]] = direct_boot_arguments(image, work, runner)
    except PmemImageError as error:                     # no GRUB entry to read: boot through the firmware
        runner.say(f"booting through the firmware: {error.message}")
        direct = None
    vars_file = copy_ovmf_vars(work / "OVMF_VARS.fd") if plan.firmware == "uefi" and direct is None else None
    console = work / "console.log"
    argv = qemu_argv(BootRequest(plan, overlay, accel, "test", console, work / "report.log", state=state_dir,
                                 ovmf_vars=vars_file, direct=tuple(direct) if direct else None, control=control,
                                 shares=tuple(shares)))
    streams = [_Stream(control / "stdout", sys.stdout.buffer), _Stream(control / "stderr", sys.stderr.buffer)]
    started = time.monotonic()
    deadline = started + (timeout or BOOT_TIMEOUT[accel] + 24 * 3600)
    process = runner.spawn(argv)
    assert process is not None
    command_started: Optional[float] = None
    try:
        status = None
        while status is None:
            for stream in streams:
                stream.pump()
            if command_started is None and (control / "started").exists():
                command_started = time.monotonic()
            status = read_small(control / "status")
            if status is None and process.poll() is not None:
                raise _no_status(process.returncode, console, command_started is not None)
            if status is None and time.monotonic() > deadline:
                stop(process, grace=2)
                for stream in streams:
                    stream.pump()
                return _result("timeout", EXIT_TIMED_OUT, started, command_started, accel, direct, streams)
            if status is None and command_started is None and time.monotonic() - started > BOOT_TIMEOUT[accel]:
                raise PmemImageError(f"{plan.name} did not start the command in {BOOT_TIMEOUT[accel]}s",
                                     f"see its console: pmem-image run {plan.name}")
            time.sleep(POLL_SECONDS)
        for stream in streams:
            stream.pump()
        _wait_for_poweroff(process)
    finally:
        stop(process, grace=2)
    return _judge(status.strip(), control, started, command_started, accel, direct, streams)


def _wait_for_poweroff(process) -> None:
    end = time.monotonic() + POWEROFF_SECONDS
    while process.poll() is None and time.monotonic() < end:
        time.sleep(POLL_SECONDS)


def _result(status: str, code: int, started: float, command_started: Optional[float], accel: str,
            direct: Optional[list[str]], streams: list[_Stream]) -> TestResult:
    now = time.monotonic()
    boot = (command_started or now) - started
    return TestResult(status, code, round(boot, 1), round(now - (command_started or now), 1), accel,
                      "direct" if direct else "firmware", {s.path.name: bytes(s.kept) for s in streams})


def _judge(status: str, control: Path, started: float, command_started: Optional[float], accel: str,
           direct: Optional[list[str]], streams: list[_Stream]) -> TestResult:
    """The guest's status line: "exit N", or why the command did not run (a boot or image failure: exit 3)."""
    word, _, code = status.partition(" ")
    if word == "exit" and code.isdigit():
        return _result("exit", int(code), started, command_started, accel, direct, streams)
    if status == "pmem not ready":
        failed = (read_small(control / "failed") or "").strip().splitlines()
        raise PmemImageError("the image's pmem did not get ready (pmem-ready.target failed), so the command did not "
                             "run" + (f"; failed units: {'; '.join(failed[:5])}" if failed else ""),
                             "verify the image to see which region, mode or mount fails: pmem-image verify NAME")
    raise PmemImageError(f"the guest did not run the command: {status[:200]}", "check the --share and --user values")


def _no_status(returncode: int, console: Path, ran: bool) -> PmemImageError:
    lines = [l for l in (console.read_text(errors="replace") if console.exists() else "").splitlines()
             if "pmem-test" in l or "Kernel panic" in l][-3:]
    what = "while the command ran" if ran else "before the command ran"
    return PmemImageError(f"QEMU exited (code {returncode}) {what}, without a status from the guest"
                          + (f": {' | '.join(l.strip() for l in lines)}" if lines else ""),
                          "an image built before pmem-image test existed has no pmem-test: rebuild it "
                          "(pmem-image build --force PROFILE)")
