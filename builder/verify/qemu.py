"""QEMU command lines for a plan, and the probe that decides between KVM and TCG."""

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Optional

from ..plan.model import Plan
from ..plan.backends import backend_for
from ..profile.errors import UsageError
from ..render.launch import OVMF_VARS
from ..runner import Runner, stop

KVM_PROBE_SECONDS = 20
def kvm_works(kernel: Optional[Path], cache: Optional[Path] = None, runner: Optional[Runner] = None
              ) -> tuple[bool, str]:
    """Whether KVM really runs a guest: boot `kernel` under KVM and wait for its banner.

    On some hosts /dev/kvm opens and QEMU starts, but the guest never gets past real mode, so
    only a timed boot tells. The answer is cached per host boot.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    if kernel is None or not kernel.exists():
        return False, "no kernel to probe KVM with"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    if cache is not None:
        try:
            cached = json.loads(cache.read_text())
            if cached.get("boot_id") == boot_id:
                return cached["works"], cached["reason"] + " (cached)"
        except (OSError, ValueError, KeyError):
            pass
    works, reason = _probe_kvm(kernel, runner or Runner())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"boot_id": boot_id, "works": works, "reason": reason}))
    return works, reason


def _probe_kvm(kernel: Path, runner: Runner) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="pmem-image-kvm-") as tmp:
        log = Path(tmp) / "serial.log"
        argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "512M", "-kernel", str(kernel),
                "-append", "console=ttyS0 panic=-1", "-display", "none", "-monitor", "none", "-nic", "none",
                "-no-reboot", "-serial", f"file:{log}"]
        process = runner.spawn(argv, quiet=True)
        assert process is not None          # quiet probes run even under --dry-run
        deadline = time.monotonic() + KVM_PROBE_SECONDS
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if log.exists() and b"Linux version" in log.read_bytes():
                    return True, "a KVM guest kernel printed its banner"
                time.sleep(0.5)
            if process.poll() is not None:
                return False, f"QEMU with KVM exited with code {process.returncode} before the guest printed anything"
            return False, f"a KVM guest printed nothing in {KVM_PROBE_SECONDS}s (KVM present but not working)"
        finally:
            stop(process, grace=0)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the guest's forwarded SSH."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_overlay(image: Path, overlay: Path, image_format: str = "raw") -> list[str]:
    return ["qemu-img", "create", "-q", "-f", "qcow2", "-F", image_format, "-b", str(image.absolute()), str(overlay)]


def copy_ovmf_vars(destination: Path) -> Path:
    shutil.copyfile(OVMF_VARS, destination)
    return destination


def prepare_state(plan: Plan, state: Path) -> Path:
    """The backend's state files in `state`: a missing one is created sparse (empty pmem, for an NVDIMM with
    an empty label area); one of another size belongs to another layout and is refused, never resized."""
    files = backend_for(plan.pmem_backend).state_files(plan)
    if files:
        state.mkdir(parents=True, exist_ok=True)
    for file in files:
        path = state / file.name
        if not path.exists():
            with open(path, "wb") as handle:
                handle.truncate(file.size)
        elif path.stat().st_size != file.size:
            raise UsageError(f"{path} is {path.stat().st_size} bytes, but this image's {plan.pmem_backend} region "
                             f"needs {file.size} (its size, and an NVDIMM's label_size): it holds another layout's pmem",
                             "move it away to start from empty pmem, or give --state another directory")
    return state.absolute()
