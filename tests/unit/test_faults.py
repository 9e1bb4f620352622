"""The fault-injection suite (marker `faults`; the disk-full half is in tests/integration/test_disk_full.py):
a build cut with SIGKILL at every phase boundary (PMEM_IMAGE_KILL_AT, as the OOM killer or a lost machine
would: no handler, no finally), a build and a verify killed while their child runs, and build, verify,
clean and gc of one profile at once. After each: the earlier output whole (every file as its SHA256SUMS
says), no staging directory once the next command ran, no child left, the instance state untouched, the
exit code as documented. The stand-in mkosi and QEMU make it seconds."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CLI_WITHOUT_ROOT_CHECK, ROOT
from stand_in import build, finish, gone, leftovers, output, start_hanging_build, wait_for, whole

pytestmark = pytest.mark.faults
# Every fault_point() of a build, in the order a build passes them ("swap": the new output is in place, the
# old one not yet removed).
PHASES = ["staging", "kernel", "layer", "mkosi", "finalize", "exports", "results", "swap"]
FAKE_QEMU = """#!/bin/sh
# Stand-in QEMU: records its pid and waits, as a guest that has not reported yet.
echo $$ > "$FAKE_MKOSI_STATE/qemu.pid"
exec sleep 300
"""


def lab_state(env: dict) -> Path:
    """An NVDIMM backing file of the profile's instance, with the user's data in it."""
    state = Path(env["PMEM_IMAGE_OUT"]) / ".state" / "default" / "nvdimm" / "nvdimm0.img"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(b"the lab's data")
    return state


def cli(env: dict, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("phase", PHASES)
def test_a_build_killed_at_each_phase_boundary_leaves_a_whole_output(env, phase):
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    state = lab_state(env)
    env.update(FAKE_MKOSI_TAG="2", PMEM_IMAGE_KILL_AT=phase)
    code, text = finish(build(env, "--force"))
    assert code == -signal.SIGKILL, text
    # Before the swap the old output stands as it was; from the swap on, the new one, whole either way.
    assert whole(output(env)), f"killed at {phase}: out/default does not match its SHA256SUMS"
    assert (output(env) / "default.raw").read_text() == ("disk-2" if phase == "swap" else "disk-1")
    if phase != "swap":
        assert (output(env) / "manifest.json").read_text() == before
    assert state.read_bytes() == b"the lab's data"
    out = Path(env["PMEM_IMAGE_OUT"])
    assert subprocess.run(["pgrep", "-f", f"{out}/.staging-"], capture_output=True).returncode == 1
    del env["PMEM_IMAGE_KILL_AT"]
    code, text = finish(build(env))          # a no-op or a rebuild: either way it clears what the kill left
    assert code == 0, text
    assert leftovers(env) == [] and list(out.glob(".default.old.*")) == [] and whole(output(env))
    assert state.read_bytes() == b"the lab's data"


def test_a_build_killed_while_mkosi_runs_takes_mkosi_with_it(env):
    """SIGKILL reaches no handler, so nothing of ours stops mkosi: the kernel does (PR_SET_PDEATHSIG)."""
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    process = start_hanging_build(env, "--force")
    mkosi = int((Path(env["FAKE_MKOSI_STATE"]) / "pid").read_text())
    process.kill()
    process.wait()
    assert gone(mkosi), "the stand-in mkosi outlived the build that was killed"
    assert (output(env) / "manifest.json").read_text() == before and whole(output(env))


def test_a_verify_killed_while_its_guest_runs_takes_qemu_with_it_and_frees_the_output(env):
    assert finish(build(env))[0] == 0
    qemu = Path(env["PMEM_IMAGE_TOOLS"]) / "qemu-system-x86_64"
    qemu.write_text(FAKE_QEMU)
    qemu.chmod(0o755)
    verify = cli(env, "verify", "--accel", "tcg", "--timeout", "120", str(output(env)))
    pid_file = Path(env["FAKE_MKOSI_STATE"]) / "qemu.pid"
    try:
        wait_for(pid_file)
    except AssertionError:
        verify.kill()
        raise AssertionError("QEMU never started: " + verify.communicate()[1][-3000:]) from None
    verify.kill()
    verify.communicate(timeout=30)
    assert gone(int(pid_file.read_text())), "QEMU outlived the verify that was killed"
    env["FAKE_MKOSI_MODE"] = "ok"
    code, text = finish(build(env, "--force"))     # the verify's shared lock went with it
    assert code == 0, text


def test_verify_clean_and_gc_beside_a_running_build_of_the_same_profile(env):
    """verify and clean refuse at once (the output is being replaced), gc waits for the build; the build's
    Ctrl-C leaves the earlier output, which gc then leaves alone too."""
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    running = start_hanging_build(env, "--force")
    try:
        verify = cli(env, "verify", "--accel", "tcg", str(output(env)))
        code, text = verify.wait(timeout=60), verify.communicate()[1]
        assert code == 3 and "default is being built or replaced right now" in text, text
        clean = cli(env, "clean", "default")
        code, text = clean.wait(timeout=60), clean.communicate()[1]
        assert code == 3 and "another build of default" in text, text
        gc = cli(env, "gc")
        time.sleep(2)
        assert gc.poll() is None, "gc did not wait for the build: " + gc.communicate()[1]
    finally:
        running.send_signal(signal.SIGINT)
        code, text = finish(running)
    assert code == 130, text
    code, text = gc.wait(timeout=60), gc.communicate()[1]
    assert code == 0, text
    assert (output(env) / "manifest.json").read_text() == before and whole(output(env)) and leftovers(env) == []
