"""Starting the QEMU of a proof boot, and what QEMU itself said when it exited.

The guest's forwarded SSH port is found free (bound to port 0, then released) and only later bound by QEMU's
user-mode network. On a busy machine another program (a client connection's source port, another QEMU) can
take it in between; QEMU then exits at once with "Could not set up host forwarding rule". That is not the
image's fault, so the boot is started again on a new port; any other early exit is the boot's own result."""

import time
from pathlib import Path
from typing import Callable, Optional

from ..runner import Process, Runner
from .qemu import free_port

PORT_ATTEMPTS = 3
EARLY_EXIT_SECONDS = 3.0      # QEMU sets up host forwarding before the guest's first instruction
PORT_TAKEN = "host forwarding rule"


def qemu_said(stderr_log: Path, count: int = 8) -> list[str]:
    """The last lines QEMU wrote to stderr (empty when it wrote none)."""
    text = stderr_log.read_text(errors="replace") if stderr_log.exists() else ""
    return [line for line in text.splitlines() if line.strip()][-count:]


def spawn_guest(runner: Runner, argv_for: Callable[[int], list[str]], forwards_port: bool,
                stderr_log: Path) -> tuple[Optional[Process], int]:
    """QEMU started with argv_for(port) (port 0: no forwarding), its stderr appended to stderr_log; with
    forwards_port a new free port for each start that QEMU refused because the port was taken meanwhile.
    Returns the process (None under --dry-run) and the port it forwards."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port() if forwards_port else 0
        said_before = stderr_log.stat().st_size if stderr_log.exists() else 0
        process = runner.spawn(argv_for(port), stderr_log=stderr_log)
        if process is None or not forwards_port or attempt == PORT_ATTEMPTS:
            return process, port
        deadline = time.monotonic() + EARLY_EXIT_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        said_now = stderr_log.read_bytes()[said_before:].decode(errors="replace")   # this start's stderr alone
        if process.poll() is None or PORT_TAKEN not in said_now:
            return process, port
        runner.say(f"QEMU could not forward port {port} (taken since it was found free); starting it on another")
    raise AssertionError("unreachable")
