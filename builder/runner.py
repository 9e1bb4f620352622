"""The one gate to subprocesses: logs each command line, streams output as timed steps,
supports --dry-run, and never leaves a child running when we are interrupted."""

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TextIO

from .profile.errors import EXIT_INTERRUPTED, PmemImageError

TAIL_LINES = 40
# Every child any Runner started and has not reaped (mkosi, QEMU, exports), across threads: an interrupt
# stops them all (stop_all_children), whichever worker started them; once CANCELLED is set no new one starts.
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()
CANCELLED = threading.Event()


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _dies_with(parent: int) -> Callable[[], None]:
    """For Popen's preexec_fn: the child gets SIGKILL when the thread that started it ends, so no mkosi or
    QEMU outlives a pmem-image killed with SIGKILL (which no handler sees); and if the parent is already
    gone by then, the child does not start at all."""
    def in_child() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(128 + signal.SIGKILL)
    return in_child


def fault_point(name: str) -> None:
    """Where the fault-injection suite cuts the power (tests/unit/test_faults.py): with PMEM_IMAGE_KILL_AT=NAME
    the process SIGKILLs itself here, as the OOM killer or a lost machine would: no handler, no finally."""
    if os.environ.get("PMEM_IMAGE_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Cancelled(PmemImageError):
    """A command refused because the whole run was interrupted (another thread got Ctrl-C or SIGTERM)."""

    exit_code = EXIT_INTERRUPTED


Process = subprocess.Popen     # a long-running child spawn() started, for modules that start none themselves


def _started(process: subprocess.Popen) -> subprocess.Popen:
    with _LIVE_LOCK:
        _LIVE.add(process)
    if CANCELLED.is_set():        # started just as the run was interrupted: stopped like the others
        stop(process, grace=2.0)
    return process


def _reaped(process: subprocess.Popen) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(process)


def check_cancelled() -> None:
    if CANCELLED.is_set():
        raise Cancelled("interrupted: nothing more is started, and no output is replaced",
                        "earlier outputs are unchanged; run the command again")


def stop_all_children() -> None:
    """Stop every child that is still going, from any thread (grace 2 s, then KILL)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    threads = [threading.Thread(target=stop, args=(process, 2.0)) for process in live]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def cancel_everything() -> None:
    """The run is interrupted: no command starts any more, and every running child is stopped."""
    CANCELLED.set()
    stop_all_children()


class CommandFailed(PmemImageError):
    def __init__(self, argv: list[str], returncode: int, tail: list[str], step: str = "", log: Optional[Path] = None):
        self.argv, self.returncode, self.tail, self.step, self.log = argv, returncode, tail, step, log
        where = f" during step '{step}'" if step else ""
        message = f"{argv[0]} failed with exit code {returncode}{where}\n" + "\n".join(f"  | {l}" for l in tail)
        hint = f"full log: {log}" if log else f"command: {shlex.join(argv)}"
        super().__init__(message, hint)


@dataclass
class Runner:
    """Runs commands for the build and verify stages; tests replace it with a recording fake."""

    dry_run: bool = False
    out: TextIO = field(default_factory=lambda: sys.stderr)
    started: float = field(default_factory=time.monotonic)
    # Children of run() still going that this Runner started (a subset of _LIVE): the exports' worker
    # threads are stopped by stop_all() when another worker failed.
    _live: set = field(default_factory=set, repr=False)
    _live_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", file=self.out, flush=True)

    def run(self, argv: list[str], *, cwd: Optional[Path] = None, log: Optional[Path] = None,
            show: Callable[[str], bool | str] = lambda line: False, env: Optional[dict] = None,
            stdin: Optional[Path] = None) -> None:
        """Run argv to completion; lines for which `show` is true (or returns a text) are echoed as steps.
        stdin: a file opened here (by us) and given to the command, which need not be able to open it."""
        self.say(f"$ {shlex.join(argv)}")
        if self.dry_run:
            return
        check_cancelled()
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        step = ""
        log_file = open(log, "a", encoding="utf-8") if log else None
        try:
            with open(stdin, "rb") if stdin else open(os.devnull, "rb") as given:
                process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=given, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True, errors="replace",
                                           start_new_session=True, preexec_fn=_dies_with(os.getpid()))
        except FileNotFoundError:
            if log_file:
                log_file.close()
            raise _missing(argv[0]) from None
        _started(process)
        with self._live_lock:
            self._live.add(process)
        try:
            assert process.stdout is not None     # stdout=PIPE
            for line in process.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                if log_file:
                    log_file.write(line + "\n")
                if shown := show(line):
                    step = line.strip("‣ ").strip()
                    self.say(shown if isinstance(shown, str) else line.strip())
            returncode = process.wait()
        finally:
            stop(process)
            _reaped(process)
            with self._live_lock:
                self._live.discard(process)
            if log_file:
                log_file.close()
        if returncode != 0:
            raise CommandFailed(argv, returncode, list(tail), step, log)

    def stop_all(self) -> None:
        """Stop every child that run() started and has not finished (from any thread)."""
        with self._live_lock:
            live = list(self._live)
        for process in live:
            stop(process, grace=2.0)

    def capture(self, argv: list[str], *, check: bool = True, timeout: Optional[float] = None,
                cwd: Optional[Path] = None) -> str:
        """Run a short query command and return its stdout (also under --dry-run: queries are harmless)."""
        result = self.query(argv, timeout=timeout, cwd=cwd)
        if check and result.returncode != 0:
            raise CommandFailed(argv, result.returncode, result.stderr.splitlines()[-TAIL_LINES:])
        return result.stdout

    def query(self, argv: list[str], *, timeout: Optional[float] = None, cwd: Optional[Path] = None,
              stdin: Optional[Path] = None) -> subprocess.CompletedProcess:
        """Run a short command quietly and return its exit code, stdout and stderr (text) whatever they are."""
        try:
            with open(stdin, "rb") if stdin else open(os.devnull, "rb") as given:
                return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                                      cwd=cwd, stdin=given)
        except FileNotFoundError:
            raise _missing(argv[0]) from None

    def interactive(self, argv: list[str]) -> int:
        """Run a command on this terminal (its output is the user's) and return its exit code."""
        sys.stdout.flush()
        return subprocess.run(argv).returncode

    def spawn(self, argv: list[str], *, cwd: Optional[Path] = None, quiet: bool = False,
              stderr_log: Optional[Path] = None) -> Optional[subprocess.Popen]:
        """Start a long-running process (QEMU); the caller must stop() it. quiet: neither logged nor
        its stderr kept (probes). stderr_log: its stderr appended to that file (why it exited, if it does);
        without one the stderr is a pipe the caller reads."""
        if not quiet:
            self.say(f"$ {shlex.join(argv)}")
        if self.dry_run and not quiet:
            return None
        check_cancelled()
        with contextlib.ExitStack() as files:
            stderr = (subprocess.DEVNULL if quiet else
                      files.enter_context(stderr_log.open("ab")) if stderr_log else subprocess.PIPE)
            return _started(subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=stderr, start_new_session=True,
                                             preexec_fn=_dies_with(os.getpid())))


def _missing(tool: str) -> PmemImageError:
    """A tool that is not installed is a tool failure (exit 3) with the way to get it, not a traceback."""
    return PmemImageError(f"{tool} is not installed (or not on PATH)",
                          "run scripts/bootstrap as root: it installs every tool pmem-image runs")


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate a child and its process group if it still runs: TERM, then KILL after `grace`."""
    if process.poll() is not None:
        _reaped(process)
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            process.poll()
            _reaped(process)
            return
        try:
            process.wait(timeout=wait)
            _reaped(process)
            return
        except subprocess.TimeoutExpired:
            continue


class Terminated(BaseException):
    """SIGTERM/SIGHUP turned into an exception so cleanup code runs as for Ctrl-C."""


def raise_on_termination() -> None:
    def handler(signum, frame):
        raise Terminated(signal.Signals(signum).name)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
