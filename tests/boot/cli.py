"""pmem-image as the boot tier runs it, and the rule its two workers keep on this 2-core machine: one image or
kernel build at a time. scripts/test runs the boot tier on two pytest-xdist workers, so that one boots in
QEMU (TCG: one to two busy threads) while the other builds (mkosi: about one); two builds at once would
starve each other. Every pmem-image the tier starts gets $PMEM_IMAGE_BUILD_LOCK (ENV), so its builds take
turns on one file while verify, run and ssh go on beside them; a test that must see no other build at all
holds `one_build_at_a_time` itself."""

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

from builder.build.locks import MachineBuildLock
from conftest import BOOT_OUT, BUILD_LOCK, PMEM_IMAGE

OUT = BOOT_OUT          # shared with later runs: an unchanged profile is a no-op there
ENV = {**os.environ, "PMEM_IMAGE_OUT": str(OUT), "PMEM_IMAGE_BUILD_LOCK": str(BUILD_LOCK)}


@contextlib.contextmanager
def one_build_at_a_time() -> Iterator[dict]:
    """Hold the build lock (no other worker's build runs or has a staging directory meanwhile); yields the
    environment for a pmem-image started inside, without the lock (it would wait for this very hold)."""
    with MachineBuildLock(BUILD_LOCK, print, "a test that needs no other build"):   # as pmem-image takes it
        yield {k: v for k, v in ENV.items() if k != "PMEM_IMAGE_BUILD_LOCK"}


def pmem_image(*args: str, timeout: float = 1800, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    """The CLI with ENV (OUT as its output root and the build lock), or env."""
    return subprocess.run([str(PMEM_IMAGE), *args], capture_output=True, text=True, timeout=timeout,
                          env=env or ENV, **options)


def report_of(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}


def proven(*args: str, timeout: float = 1800) -> dict:
    """The JSON report of a command that must pass its proof."""
    result = pmem_image(*args, timeout=timeout)
    report = report_of(result)
    assert result.returncode == 0 and report.get("passed"), failure_of(result, report)
    return report


def failure_of(result: subprocess.CompletedProcess, report: dict) -> str:
    """What a failed command says: its failed proof rows first (a report's tail is guest JSON that names none
    of them), then stderr; the stdout tail only when there is no report."""
    failed = [f"{c['name']}: {c['detail']}" for c in report.get("checks", []) if not c.get("passed")]
    return "\n".join([f"exit {result.returncode}; failed rows ({len(failed)}):", *failed, "stderr:",
                      result.stderr[-4000:], *([] if report else ["stdout:", result.stdout[-4000:]])])


def rows(report: dict) -> dict[str, str]:
    """The passed rows of a report: name -> detail."""
    return {c["name"]: c["detail"] for c in report["checks"] if c["passed"]}


@contextlib.contextmanager
def running(profile: Path, name: str, console: Path, *ssh_options: str, env: dict | None = None
            ) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """`pmem-image run PROFILE` in the background (its console into a file: a full pipe would stall the
    guest), until `pmem-image ssh` gets in; yields ssh(*command) and powers the guest off afterwards."""
    process = subprocess.Popen([str(PMEM_IMAGE), "run", "--accel", "tcg", str(profile)], stdin=subprocess.DEVNULL,
                               stdout=console.open("w"), stderr=subprocess.STDOUT, env=env or ENV)

    def ssh(*command: str, **options) -> subprocess.CompletedProcess:
        return pmem_image("ssh", name, *ssh_options, "--", *command, env=env, **options)
    try:
        deadline = time.monotonic() + 600
        while (probe := ssh("true", timeout=60)).returncode != 0:
            assert process.poll() is None, "run exited before SSH came up:\n" + console.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no SSH login in 600 s: {probe.stderr}"
            time.sleep(5)
        yield ssh
        ssh("sudo", "-n", "systemctl", "poweroff", timeout=60)
        assert process.wait(timeout=180) == 0, console.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
