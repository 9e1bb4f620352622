"""The real path: mkosi 24.3 builds the shipped profiles, QEMU boots them (KVM if it works, else TCG)
and the guest proves pmem + DAX. Minutes; CI runs them."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cli import ENV, OUT, failure_of, one_build_at_a_time, pmem_image, proven, report_of, rows
from conftest import PMEM_IMAGE, PROFILES, ROOT, debugfs, root_filesystem

# One worker runs this file's tests in order (they share out/test/default), beside the other files' tests.
pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]
# (profile, verify --fast): the full firmware boot once per firmware (default: SeaBIOS + GRUB, debian-xfs-uefi:
# OVMF + GRUB); the other profiles prove their layouts and release on the direct kernel boot.
PROVEN = [("default", False), ("debian-xfs-uefi", False), ("multi-region", True), ("trixie", True)]


@pytest.mark.parametrize("name, fast", PROVEN)
def test_build_and_prove(name, fast):
    report = proven("build", "--verify", "--json", *(["--fast"] if fast else []), str(PROFILES / f"{name}.yaml"))
    assert report["boot"] == ("direct" if fast else "firmware")
    serial = (OUT / name / "verify" / "serial.log").read_text(errors="replace")
    # The firmware boot went through GRUB's entry; the direct one was handed the same command line.
    assert ("BOOT_IMAGE=" in report["guest_report"]["cmdline"]) != fast, report["guest_report"]["cmdline"]
    assert "root=PARTUUID=" in report["guest_report"]["cmdline"] and "Linux version" in serial
    names = [c["name"] for c in report["checks"]]
    assert "/dev/pmem0 DAX active" in names and "/dev/pmem0 MAP_SYNC" in names
    guest = report["guest_report"]
    manifest = json.loads((OUT / name / "manifest.json").read_text())
    assert guest["kernel_release"] == manifest["kernel_release"] != ""
    for mount in guest["mounts"]:
        assert mount["flush_test"]["map_sync"] is True and mount["flush_test"]["verification"] == "ok"
    assert not (OUT / name / "verify" / "overlay.qcow2").exists()


@contextlib.contextmanager
def booted_as_published(tmp_path: Path, **plan_changes):
    """The default image started as a user would (no self-test asked), optionally on another machine than
    its plan's; yields (QEMU process, serial log) and stops QEMU afterwards."""
    from builder.plan.model import Plan
    from builder.runner import stop
    from builder.verify.boot_request import BootRequest, qemu_argv
    from builder.verify.qemu import make_overlay
    plan = Plan.model_validate_json((OUT / "default" / "plan.json").read_text()).model_copy(update=plan_changes)
    overlay, serial = tmp_path / "overlay.qcow2", tmp_path / "serial.log"
    subprocess.run(make_overlay(OUT / "default" / "default.raw", overlay), check=True)
    process = subprocess.Popen(qemu_argv(BootRequest(plan, overlay, "tcg", "published", serial, tmp_path / "report.log")),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        yield process, serial
    finally:
        stop(process)


def wait_for_console(process, serial: Path, text: str, seconds: float = 600) -> str:
    deadline = time.monotonic() + seconds
    while text not in (serial.read_text(errors="replace") if serial.exists() else ""):
        assert process.poll() is None, f"QEMU exited before {text!r}"
        assert time.monotonic() < deadline, f"no {text!r} on the console in {seconds:.0f} s"
        time.sleep(1)
    return serial.read_text(errors="replace")


def test_published_image_boots_without_running_the_self_test(tmp_path):
    """No OEM string, no kernel argument: the image reaches its login prompt, writes no report and stays up."""
    from builder.verify.proof import BEGIN
    with booted_as_published(tmp_path) as (process, serial):
        wait_for_console(process, serial, "login:")
        time.sleep(10)   # the self-test unit would have run by now (it is ordered after the pmem mounts)
        text = serial.read_text(errors="replace")
        assert "login:" in text and BEGIN not in text and "Mounted" in text
        assert process.poll() is None, "the guest powered itself off"


def test_unchanged_profile_is_a_no_op():
    before = (OUT / "default" / "manifest.json").read_text()
    started = time.monotonic()
    result = pmem_image("build", str(PROFILES / "default.yaml"))
    assert result.returncode == 0 and "up to date" in result.stderr, result.stderr
    assert (OUT / "default" / "manifest.json").read_text() == before
    print(f"no-op rebuild took {time.monotonic() - started:.2f}s")


def _saved_build(tmp_path: Path, name: str = "default") -> Path:
    before = tmp_path / "before"
    before.mkdir()
    for file in ("manifest.json", f"{name}.manifest", "contents.json"):
        shutil.copy(OUT / name / file, before / file)
    return before


def _assert_identical(before: Path, after: Path = OUT / "default") -> str:
    """pmem-image diff of the saved build and the new one; on a difference its output says where."""
    diff = subprocess.run([str(PMEM_IMAGE), "diff", str(before), str(after)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "identical: every artifact has the same sha256" in diff.stdout and "not compared" not in diff.stdout
    return diff.stdout.splitlines()[-1]


def test_a_pmem_only_change_reuses_the_package_layer(tmp_path):
    """Another memory layout and command line (a profile of its own, so the shared default stays): no
    package is installed, the layer of default's build is copied; the new image has the new layout."""
    profile = tmp_path / "default-resized.yaml"
    profile.write_text((PROFILES / "default.yaml").read_text().replace("name: default", "name: default-resized")
                       .replace("size: 1G", "size: 768M").replace("cmdline: []", "cmdline: [quiet]"))
    started = time.monotonic()
    result = pmem_image("build", str(profile))
    seconds = time.monotonic() - started
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        manifest = json.loads((OUT / "default-resized" / "manifest.json").read_text())
        default = json.loads((OUT / "default" / "manifest.json").read_text())
        assert manifest["package_layer"] == {**default["package_layer"], "reused": True}
        assert "Installing Debian" not in result.stderr and "Copying cached trees" in result.stderr
        assert manifest["memmap"] == ["memmap=768M!4G"] and "quiet" in manifest["kernel_cmdline"]
        print(f"\npmem-only change rebuilt in {seconds:.1f} s from the package layer")
    finally:
        shutil.rmtree(OUT / "default-resized", ignore_errors=True)


def test_a_rebuild_elsewhere_from_the_package_layer_gives_the_same_bytes(tmp_path):
    """default.yaml copied elsewhere and built into another output root that shares only the package store and
    layers: it takes its packages from the layer the first build installed into (in CI that first build is
    from scratch: out/ starts empty), and it is bit-identical to it: raw disk, kernel, initrd, the files and
    the partition table in contents.json. So no path of the build reaches the image, and a layer-based build
    equals a from-scratch one. (This also is the forced rebuild of the same profile: a build elsewhere is one.)"""
    elsewhere = tmp_path / "elsewhere"
    other = elsewhere / "out"
    other.mkdir(parents=True)
    (other / ".cache").symlink_to(OUT / ".cache")
    profile = elsewhere / "default.yaml"
    profile.write_text((PROFILES / "default.yaml").read_text())
    started = time.monotonic()
    built = pmem_image("build", str(profile), env={**ENV, "PMEM_IMAGE_OUT": str(other)})
    assert built.returncode == 0, built.stderr[-3000:]
    assert json.loads((other / "default" / "manifest.json").read_text())["package_layer"]["reused"], built.stderr
    print(f"\nrebuild elsewhere {time.monotonic() - started:.0f} s, bit-identical: "
          f"{_assert_identical(OUT / 'default', other / 'default')}")


def test_a_locked_build_runs_offline_and_gives_the_same_bytes(tmp_path):
    """lock the default build, then build the locked profile again with no network at all (a network
    namespace without a route; packages and lists from the package store): it succeeds, and the image is
    bit-identical to the online one."""
    profile = tmp_path / "default.yaml"
    profile.write_text((PROFILES / "default.yaml").read_text())
    locked = pmem_image("lock", str(profile))
    assert locked.returncode == 0, locked.stderr
    before = _saved_build(tmp_path)
    started = time.monotonic()
    offline = subprocess.run(["unshare", "--net", str(PMEM_IMAGE), "build", "--offline", str(profile)],
                             capture_output=True, text=True, timeout=1800, env=ENV)
    assert offline.returncode == 0, offline.stderr[-4000:]
    # The lock's pins are part of the package layer's key: this build installed every package afresh.
    assert not json.loads((OUT / "default" / "manifest.json").read_text())["package_layer"]["reused"]
    _assert_identical(before)
    print(f"\nlocked offline build {time.monotonic() - started:.0f} s, "
          f"{len(json.loads(profile.with_suffix('.lock').read_text())['packages'])} packages, bit-identical")


def test_mkosi_ran_the_private_prefixs_tools_not_the_hosts():
    """bootstrap unpacks mkosi's newer tools into .tools/ instead of upgrading the host (systemd 252 and
    e2fsprogs 1.47.0 on bookworm): the default build's log shows the prefix's mke2fs formatting the root."""
    tools = ROOT / ".tools" / "bin"
    prefix = subprocess.run([str(tools / "mke2fs"), "-V"], capture_output=True, text=True).stderr.split("(")[0].strip()
    assert prefix.startswith("mke2fs 1.47") and prefix in (OUT / "default" / "build.log").read_text()
    args = f"--extra-search-path {tools}"
    assert args in subprocess.run([str(PMEM_IMAGE), "build", "--dry-run", "--force", str(PROFILES / "default.yaml")],
                                  capture_output=True, text=True).stderr


def test_image_is_golden_clean():
    """No root password, no machine-id baked in, serial console and no firstboot prompt on the cmdline."""
    source, _ = root_filesystem(OUT / "default" / "default.raw")

    def cat(path: str) -> str:
        return debugfs(source, f"cat {path}")

    def listing(path: str) -> str:
        return debugfs(source, f"ls -l {path}")

    shadow_root = next(l for l in cat("/etc/shadow").splitlines() if l.startswith("root:"))
    assert shadow_root.split(":")[1] in ("*", "!", "!*"), shadow_root    # locked, not empty
    assert cat("/etc/machine-id").strip() in ("", "uninitialized")
    assert "console=ttyS0" in cat("/etc/kernel/cmdline") and "systemd.firstboot=off" in cat("/etc/kernel/cmdline")
    assert cat("/usr/lib/systemd/system/pmem-selftest.service").count("ExecCondition=") == 1
    release = json.loads((OUT / "default" / "manifest.json").read_text())["kernel_release"]
    assert "CONFIG_ZONE_DEVICE=y" in cat(f"/usr/lib/modules/{release}/config")   # kept for the boot proof
    # Autologin lives in drop-ins (mkosi's Autologin= writes getty@/serial-getty@/console-getty .d/ files).
    for unit in ("serial-getty@.service", "getty@.service", "console-getty.service", "serial-getty@ttyS0.service"):
        for directory in ("/usr/lib/systemd/system", "/etc/systemd/system"):
            assert "autologin" not in cat(f"{directory}/{unit}")
            dropins = [l.split()[-1] for l in listing(f"{directory}/{unit}.d").splitlines() if l.strip()
                       and l.split()[-1].endswith(".conf")]
            for dropin in dropins:
                assert "autologin" not in cat(f"{directory}/{unit}.d/{dropin}"), f"{unit}.d/{dropin}"
    assert "ndctl-monitor.service" not in listing("/etc/systemd/system/multi-user.target.wants")


def test_ctrl_c_during_a_real_mkosi_build_keeps_the_previous_image():
    """Interrupted while apt installs (--cold: the package layer would skip that step): exit 130, the earlier
    output as it was, and nothing of the build left: no staging directory, no process, no mkosi workspace
    (mkosi works inside the staging directory, not in /var/tmp)."""
    before = (OUT / "default" / "manifest.json").read_text()
    with one_build_at_a_time() as alone:      # no other worker's staging directory or workspace either
        workspaces = set(Path("/var/tmp").glob("mkosi-workspace-*"))
        process = subprocess.Popen([str(PMEM_IMAGE), "build", "--cold", str(PROFILES / "default.yaml")],
                                   stderr=subprocess.PIPE, text=True, env=alone)
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "Installing Debian" in line:
                break
        process.send_signal(signal.SIGINT)
        rest = process.stderr.read()
        assert process.wait(timeout=120) == 130, "".join(seen) + rest
        assert (OUT / "default" / "manifest.json").read_text() == before
        assert list(OUT.glob(".staging-*")) == []
        assert subprocess.run(["pgrep", "-f", f"{OUT}/.staging-"], capture_output=True).returncode == 1
        assert set(Path("/var/tmp").glob("mkosi-workspace-*")) <= workspaces


def test_sigterm_stops_a_jobs_2_build_of_two_real_profiles_within_seconds():
    """build --force --jobs 2 of default and multi-region (they share a package cache, so one mkosi runs and
    the other build waits for it), SIGTERM once mkosi works: exit 130 within seconds (printed), no mkosi and
    no staging directory left, both earlier outputs as they were."""
    names = ("default", "multi-region")
    before = {name: (OUT / name / "manifest.json").read_text() for name in names}
    with one_build_at_a_time() as alone:
        process = subprocess.Popen([str(PMEM_IMAGE), "build", "--force", "--jobs", "2",
                                    *(str(PROFILES / f"{name}.yaml") for name in names)],
                                   stderr=subprocess.PIPE, text=True, env=alone, start_new_session=True)
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "‣ " in line and "Building" in line:       # mkosi's first step of the first image
                break
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rest = process.stderr.read()
        assert process.wait(timeout=60) == 130, "".join(seen) + rest
        seconds = time.monotonic() - sent
        print(f"\nbuild --jobs 2 exited {seconds:.1f} s after SIGTERM")
        # 10 s is the aim; the bound leaves room for removing a half-copied image tree beside a TCG boot
        assert seconds < 20, f"exit after {seconds:.0f} s"
        assert subprocess.run(["pgrep", "-f", "python3 -m mkosi"], capture_output=True).returncode == 1
        assert list(OUT.glob(".staging-*")) == []
    assert {name: (OUT / name / "manifest.json").read_text() for name in names} == before


def test_a_guest_that_really_hangs_is_reported_as_hanging(monkeypatch):
    """The default image's kernel booted with a root it can never find (rootwait): it prints its banner and
    then waits forever. verify must say the boot hangs (QEMU is still running), not that QEMU exited."""
    from builder.plan.model import Plan
    from builder.runner import Runner
    from builder.verify import boot
    plan = Plan.model_validate_json((OUT / "default" / "plan.json").read_text())
    kernel = OUT / "default" / "default.vmlinuz"

    def hanging_guest(request):
        return ["qemu-system-x86_64", "-accel", "tcg", "-m", "512M", "-kernel", str(kernel),
                "-append", "console=ttyS0 root=/dev/nowhere rootwait", "-display", "none", "-monitor", "none",
                "-nic", "none", "-serial", f"file:{request.console}", "-serial", f"file:{request.report}"]

    monkeypatch.setattr(boot, "qemu_argv", hanging_guest)
    result = boot.verify(plan, OUT / "default", Runner(), accel="tcg", timeout=20)
    assert not result.passed
    assert "the boot hangs" in result.checks[0].detail, result.checks[0]
    assert "Linux version" in (OUT / "default" / "verify" / "serial.log").read_text(errors="replace")


def test_a_power_cycle_whose_first_qemu_exits_says_qemu_exited_and_why(monkeypatch):
    """--power-cycle, and the first boot's QEMU refuses to start (a device it does not know): no second boot is
    made, and the row says QEMU exited and what it said, not that a boot hangs (CI on dd6714f said "hangs")."""
    from builder.plan.model import Plan
    from builder.runner import Runner
    from builder.verify import boot

    def refused(request):
        return ["qemu-system-x86_64", "-machine", "none", "-display", "none", "-nodefaults",
                "-device", "no-such-device", "-serial", f"file:{request.console}"]

    monkeypatch.setattr(boot, "qemu_argv", refused)
    plan = Plan.model_validate_json((OUT / "default" / "plan.json").read_text())
    result = boot.verify(plan, OUT / "default", Runner(), accel="tcg", power_cycle=True, timeout=60)
    assert not result.passed and len(result.checks) == 1, result.checks
    assert result.checks[0].detail.startswith("QEMU exited before the guest ran:"), result.checks[0]
    assert "no-such-device" in result.checks[0].detail


def test_a_vm_without_the_planned_memory_says_why_pmem_is_missing(tmp_path):
    """The default image (1G of pmem at 4G, built for 4G of RAM) started with -m 2G: the layout guard says
    in one console line that /dev/pmem0 cannot exist here, and on what machine it would."""
    with booted_as_published(tmp_path, memory=2 << 30) as (process, serial):
        text = wait_for_console(process, serial, "cannot exist on this machine")
    line = next(l for l in text.splitlines() if "cannot exist" in l)
    assert "/dev/pmem0 (memmap=1G!4G)" in line and "q35 VM with 4096M of RAM" in line, line


def test_memmap_pmem_is_lost_at_power_off_and_verify_says_that_is_expected(tmp_path):
    junit = tmp_path / "proof.xml"
    # The build directory itself (built earlier in the session, and perhaps locked since): no rebuild here.
    if not (OUT / "default" / "manifest.json").exists():
        assert pmem_image("build", str(PROFILES / "default.yaml")).returncode == 0
    result = pmem_image("verify", "--power-cycle", "--fast", "--json", "--junit", str(junit), str(OUT / "default"))
    report = report_of(result)
    assert result.returncode == 0 and report.get("passed"), failure_of(result, report)
    # The same proof as JUnit: a testcase per row, none failed.
    suite = ET.parse(junit).getroot().find("testsuite[@name='default']")
    assert [c.get("name") for c in suite.findall("testcase")] == [c["name"] for c in report["checks"]]
    assert suite.get("failures") == "0"
    passed = rows(report)
    assert "/dev/pmem0 power-off loses memmap pmem (expected)" in passed
    assert "power-cycle: second boot proof" in passed and "/dev/pmem0 survives power-off" not in passed
    result = report["guest_report"]["power_cycle"]
    assert [r["check_seed"] for r in result] == ["failed"]
    # ...and the first boot had written them (so the loss is RAM's, not a seed never written)
    assert report["first_boot_report"]["seeded"] == [{"mountpoint": "/mnt/pmem0", "seed": "ok", "pool": None}]


# pmem-image test on the default image built above (memmap, no users: the command runs as root). Here, in
# this file's order, because its rebuilds of default could not run while a test boots it.
def test_the_commands_exit_code_output_writes_and_json_report_come_back(tmp_path):
    """One boot for what a command gives back: its exit code as pmem-image's, its stdout and stderr, the files
    it wrote in the shared directory, and with --json a last stdout line that says so with the times."""
    (tmp_path / "input.txt").write_text("from the host\n")
    script = ("cat input.txt; pwd; id -un; findmnt -no FSTYPE,OPTIONS /mnt/pmem0; "
              "echo 'to stderr' >&2; echo from the guest > output.txt; exit 7")
    started = time.monotonic()
    result = pmem_image("test", "--json", "--share", str(tmp_path), str(OUT / "default"), "--", "sh", "-c", script,
                        timeout=900)
    seconds = time.monotonic() - started
    assert result.returncode == 7, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["from the host", "/src", "root"], result.stdout
    assert lines[3].startswith("ext4") and "dax" in lines[3], result.stdout
    assert "to stderr" in result.stderr and "pmem-image" not in result.stderr      # no failure of its own
    assert (tmp_path / "output.txt").read_text() == "from the guest\n"
    assert not list((OUT / ".state" / "default" / "test").glob("test-*"))          # the work directory is gone
    report = json.loads(lines[-1])
    assert report["status"] == "exit" and report["command_exit_code"] == 7 and report["boot"] == "direct"
    assert 0 < report["boot_seconds"] < seconds
    print(f"\npmem-image test default: {seconds:.1f} s (boot to command {report['boot_seconds']} s)")


def test_a_command_that_does_not_exist_is_127(tmp_path):
    result = pmem_image("test", "--share", f"{tmp_path}:/work", str(OUT / "default"), "--", "no-such-command", timeout=900)
    assert result.returncode == 127, result.stdout + result.stderr
    assert "no-such-command" in result.stderr


def test_the_timeout_stops_the_guest_and_says_so(tmp_path):
    started = time.monotonic()
    # 60 s from QEMU's start: the command has started by then or is about to (the boot takes 25-50 s here)
    result = pmem_image("test", "--timeout", "60", "--share", str(tmp_path), str(OUT / "default"), "--",
                        "sleep", "3600", timeout=900)
    assert result.returncode == 124, result.stdout + result.stderr
    assert "timed out after 60s" in result.stderr and time.monotonic() - started < 120
