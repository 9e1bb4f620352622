"""build's safety properties, with a stand-in mkosi on PATH (the real one runs in tests/boot):
no-op when unchanged, atomic replace, and nothing lost on failure, Ctrl-C, SIGKILL or a second build."""

import fcntl
import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import PROFILES, plan_of_file
from stand_in import build, finish, leftovers, output, start_hanging_build


def test_build_without_root_is_refused_with_a_hint(monkeypatch):
    import builder.build.mkosi as mkosi
    monkeypatch.setattr(mkosi.os, "geteuid", lambda: 1000)
    with pytest.raises(mkosi.UsageError, match="needs root") as caught:
        mkosi.require_root()
    assert "sudo" in caught.value.hint and caught.value.exit_code == 2


def test_first_build_writes_outputs_and_manifest(env):
    code, text = finish(build(env))
    assert code == 0, text
    directory = output(env)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["image"] == "default.raw" and manifest["memmap"] == ["memmap=1G!4G"]
    assert {f["name"] for f in manifest["files"]} == {"default.raw", "default.vmlinuz", "default.initrd",
                                                       "default.manifest", "kernel.config", "contents.json"}
    contents = json.loads((directory / "contents.json").read_text())
    assert contents["partition_table"]["id"] == "FAKE" and "device" not in contents["partition_table"]
    sums = (directory / "SHA256SUMS").read_text()
    assert "default.raw" in sums and (directory / "plan.json").exists() and "Installing Debian" in text
    assert leftovers(env) == []
    launch = manifest["launch"]
    assert launch["memory"] == 4 << 30 and launch["machine"] == "q35" and "-snapshot" in launch["qemu_argv"]
    assert f"<source file=\"{directory / 'default.raw'}\"" in (directory / launch["libvirt_domain"]).read_text()


def test_unchanged_profile_is_a_no_op_and_a_change_rebuilds(env, tmp_path):
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    env["FAKE_MKOSI_TAG"] = "2"
    started = time.monotonic()
    code, text = finish(build(env))
    assert code == 0 and "up to date" in text and time.monotonic() - started < 5
    assert (output(env) / "manifest.json").read_text() == before
    changed = tmp_path / "changed.yaml"
    changed.write_text((PROFILES / "default.yaml").read_text().replace("cpus: 2", "cpus: 1"))
    code, text = finish(build(env, profile=changed))
    assert code == 0 and "up to date" not in text and (output(env) / "default.raw").read_text() == "disk-2"


def test_force_rebuilds(env):
    assert finish(build(env))[0] == 0
    env["FAKE_MKOSI_TAG"] = "3"
    assert finish(build(env, "--force"))[0] == 0
    assert (output(env) / "default.raw").read_text() == "disk-3"


def test_an_image_written_in_place_is_not_up_to_date(env):
    """Same size, new content (a .raw booted without an overlay): the no-op check must see it."""
    assert finish(build(env))[0] == 0
    time.sleep(0.01)
    (output(env) / "default.raw").write_text("disk-9")
    code, text = finish(build(env))
    assert code == 0 and "up to date" not in text and (output(env) / "default.raw").read_text() == "disk-1"


def test_deleted_image_triggers_a_rebuild(env):
    assert finish(build(env))[0] == 0
    (output(env) / "default.raw").unlink()
    code, text = finish(build(env))
    assert code == 0 and "up to date" not in text and (output(env) / "default.raw").exists()


def test_failed_build_keeps_previous_output_and_shows_the_failing_step(env):
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    env["FAKE_MKOSI_MODE"] = "fail"
    code, text = finish(build(env, "--force"))
    assert code == 3 and "during step 'Something broke'" in text and "Unable to locate package" in text
    assert f"full log: {Path(env['PMEM_IMAGE_OUT']) / 'default.failed' / 'build.log'}" in text and "Traceback" not in text
    assert "Unable to locate package" in (Path(env["PMEM_IMAGE_OUT"]) / "default.failed" / "build.log").read_text()
    assert (output(env) / "manifest.json").read_text() == before and leftovers(env) == []


def test_ctrl_c_stops_mkosi_and_keeps_previous_output(env):
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    process = start_hanging_build(env, "--force")
    process.send_signal(signal.SIGINT)
    code, text = finish(process)
    assert code == 130 and "interrupted" in text
    mkosi_pid = int((Path(env["FAKE_MKOSI_STATE"]) / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(mkosi_pid, 0)
    assert (output(env) / "manifest.json").read_text() == before and leftovers(env) == []


def test_sigterm_behaves_like_ctrl_c(env):
    process = start_hanging_build(env)
    process.terminate()
    code, _ = finish(process)
    assert code == 130 and not output(env).exists() and leftovers(env) == []


def test_killed_build_leaves_previous_output_and_the_next_build_cleans_up(env):
    assert finish(build(env))[0] == 0
    before = (output(env) / "manifest.json").read_text()
    process = start_hanging_build(env, "--force")
    process.kill()
    process.wait()
    os.kill(int((Path(env["FAKE_MKOSI_STATE"]) / "pid").read_text()), signal.SIGKILL)
    assert (output(env) / "manifest.json").read_text() == before and len(leftovers(env)) == 1
    env["FAKE_MKOSI_MODE"] = "ok"
    assert finish(build(env, "--force"))[0] == 0
    assert leftovers(env) == []


def test_cleanup_never_touches_another_profiles_staging(env, tmp_path):
    out = Path(env["PMEM_IMAGE_OUT"])
    other = out / ".staging-default-uefi-abcd1234"      # a live build of a profile named default-uefi
    other.mkdir(parents=True)
    stale = out / ".staging-default-k3j_x9q2"            # left by a killed build of default
    stale.mkdir()
    assert finish(build(env))[0] == 0
    assert other.exists() and not stale.exists()


def test_second_concurrent_build_is_refused(env):
    first = start_hanging_build(env)
    try:
        code, text = finish(build(env))
        assert code == 3 and "another build of default, or a verify or run of it, is going (pid" in text
    finally:
        first.send_signal(signal.SIGINT)
        finish(first)


def test_distro_kernel_missing_a_required_option_fails_the_build(env, tmp_path):
    config = Path(env["FAKE_KERNEL_CONFIG"])
    config.write_text(config.read_text().replace("CONFIG_ZONE_DEVICE=y", "# CONFIG_ZONE_DEVICE is not set"))
    code, text = finish(build(env))
    assert code == 3 and "lacks options pmem emulation needs" in text and "CONFIG_ZONE_DEVICE: wanted y, got n" in text
    assert not output(env).exists() and leftovers(env) == []


def test_dry_run_prints_the_mkosi_command_and_writes_nothing(env):
    code, text = finish(build(env, "--dry-run"))
    assert code == 0 and f"$ {env['PMEM_IMAGE_TOOLS']}/mkosi -C " in text and "--package-cache-dir" in text
    assert f"--extra-search-path {env['PMEM_IMAGE_TOOLS']}" in text    # the prefix's systemd-repart & co.
    assert not Path(env["PMEM_IMAGE_OUT"]).exists()


def test_builds_of_two_profiles_at_once_take_turns_on_the_shared_caches(env, tmp_path):
    """Two profiles built at the same time: their mkosi runs share the package cache, so they must not
    overlap (the second waits for the cache lock and says so), and both finish."""
    spans, text = two_slow_builds(env, tmp_path, "bookworm")
    assert spans[0][1] <= spans[1][0], f"mkosi runs overlapped: {spans}"
    assert "waiting for the shared packages cache" in text


def two_slow_builds(env: dict, tmp_path: Path, release: str) -> tuple[list[tuple[float, float]], str]:
    """default and a copy of it on `release` built at once (the stand-in mkosi takes a second): when each one's
    mkosi ran, in start order, and what both said."""
    env["FAKE_MKOSI_MODE"] = "slow"
    other = tmp_path / "other.yaml"
    other.write_text((PROFILES / "default.yaml").read_text().replace("name: default", "name: other")
                     .replace("release: bookworm", f"release: {release}"))
    first, second = build(env), build(env, profile=other)
    (code_a, text_a), (code_b, text_b) = finish(first), finish(second)
    assert code_a == 0 and code_b == 0, text_a + text_b
    state = Path(env["FAKE_MKOSI_STATE"])
    spans = sorted((float((state / f"{n}.start").read_text()), float((state / f"{n}.end").read_text()))
                   for n in ("default", "other"))
    return spans, text_a + text_b


def test_builds_of_two_releases_overlap_and_gc_waits_for_them(env, tmp_path):
    """Each release has a package cache of its own, so a bookworm and a trixie build run their mkosi at the same
    time (review M10: one global lock made them take turns); gc, which empties every cache, waits for both."""
    from builder.build.locks import CacheLock
    spans, text = two_slow_builds(env, tmp_path, "trixie")
    assert spans[1][0] < spans[0][1], f"mkosi runs of two releases took turns: {spans}"
    assert "waiting for the shared packages cache" not in text
    out = Path(env["PMEM_IMAGE_OUT"])
    with CacheLock(out, "packages", shared=True) as held, open(held.path, "a+") as gc:   # as a build holds it
        with pytest.raises(BlockingIOError):
            fcntl.flock(gc, fcntl.LOCK_EX | fcntl.LOCK_NB)                                  # gc's exclusive lock


def test_a_no_op_build_removes_what_a_killed_build_left(env):
    assert finish(build(env))[0] == 0
    stale = Path(env["PMEM_IMAGE_OUT"]) / ".staging-default-abc123"
    stale.mkdir()
    code, text = finish(build(env))
    assert code == 0 and "up to date" in text and not stale.exists()


def test_clean_and_gc(env):
    from builder.cli.main import main
    assert finish(build(env))[0] == 0
    out = Path(env["PMEM_IMAGE_OUT"])
    archives = out / ".cache" / "packages" / "debian~bookworm" / "cache" / "apt" / "archives"
    (archives / "x_1_amd64.deb").write_text("no build names it")
    assert main(["gc", "--out", str(out)]) == 0 and not (archives / "x_1_amd64.deb").exists()
    assert (archives / "ndctl_1.0_amd64.deb").exists()                 # the build's own package stays
    assert main(["clean", "--out", str(out), "default"]) == 0 and not (out / "default").exists()
    assert main(["clean", "--out", str(out), "default"]) == 2


FAKE_KERNEL_MAKEFILE = """VERSION = 6
PATCHLEVEL = 1
SUBLEVEL = 5
tinyconfig x86_64_defconfig:
\techo "# fresh start config" > $(O)/.config
olddefconfig:
\t@true
kernelrelease:
\t@echo 6.1.5-pmem
bzImage:
\techo "compiled by $$(id -u) at $$(date +%s.%N)" >> $(O)/compilations
\tsleep 2
\tmkdir -p $(O)/arch/x86/boot && echo bzImage > $(O)/arch/x86/boot/bzImage
modules:
\t@true
modules_install:
\tmkdir -p $(INSTALL_MOD_PATH)/lib/modules/6.1.5-pmem/kernel
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox drops from root to an unprivileged user")
def test_two_profiles_sharing_a_kernel_build_it_once_in_turn(env, tmp_path):
    """Two profiles whose kernels come from the same tree, built at the same time: the second waits for the
    shared kernel cache and reuses the first's kernel (one compilation, by the sandbox user); both finish."""
    tree = tmp_path / "profiles" / "linux"
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    (tree / "Makefile").write_text(FAKE_KERNEL_MAKEFILE)
    merge = tree / "scripts" / "kconfig" / "merge_config.sh"
    merge.write_text('#!/bin/sh\ncat "$5" >> "$4"\n')          # -m -O BUILD .config FRAGMENT
    merge.chmod(0o755)
    profiles = []
    for name in ("kernel-a", "kernel-b"):
        profile = tmp_path / "profiles" / f"{name}.yaml"
        profile.write_text(f"name: {name}\ndistribution: {{name: debian, release: bookworm}}\n"
                           "kernel: {source: tree, version: '6.1.5', path: linux}\npmem: [{memmap: 1G!4G}]\n")
        profiles.append(profile)
    options = plan_of_file(profiles[0])[0].kernel_options
    Path(env["FAKE_KERNEL_CONFIG"]).write_text("".join(f"CONFIG_{s}={v}\n" for s, v in options.items()))
    first, second = (build(env, profile=p) for p in profiles)
    (code_a, text_a), (code_b, text_b) = finish(first), finish(second)
    assert code_a == 0 and code_b == 0, text_a + text_b
    compilations = list((Path(env["PMEM_IMAGE_OUT"]) / ".cache" / "kernel-build").glob("*/compilations"))
    assert len(compilations) == 1 and compilations[0].read_text().count("compiled by 65534") == 1
    assert "cached build" in text_a + text_b and "waiting for the shared kernels cache" in text_a + text_b


def _layer(env: dict) -> dict:
    return json.loads((output(env) / "manifest.json").read_text())["package_layer"]


def test_a_pmem_only_change_reuses_the_package_layer_and_a_package_change_does_not(env, tmp_path):
    """The package layer (mkosi's incremental cache) is keyed by what decides the installed packages: a new
    memory layout, command line or name reuses it; another package list installs into a new one."""
    code, text = finish(build(env))
    first = _layer(env)
    assert code == 0 and not first["reused"] and "Installing Debian" in text, text
    assert f"--incremental=yes --cache-dir {Path(env['PMEM_IMAGE_OUT'])}/.cache/layers/{first['name']}" in \
        (Path(env["FAKE_MKOSI_STATE"]) / "args").read_text()
    resized = tmp_path / "resized.yaml"
    resized.write_text((PROFILES / "default.yaml").read_text().replace("size: 1G", "size: 512M")
                       .replace("cmdline: []", "cmdline: [quiet]"))
    code, text = finish(build(env, profile=resized))
    assert code == 0 and _layer(env) == {**first, "reused": True}, text
    assert "Copying cached trees" in text and "Installing Debian" not in text and "reused" in text
    more = tmp_path / "more.yaml"
    more.write_text((PROFILES / "default.yaml").read_text() + "packages: [strace]\n")
    code, text = finish(build(env, profile=more))
    assert code == 0 and "Installing Debian" in text and _layer(env)["name"] != first["name"], text


def test_cold_installs_the_packages_again(env):
    assert finish(build(env))[0] == 0
    code, text = finish(build(env, "--cold"))
    assert code == 0 and "Installing Debian" in text and not _layer(env)["reused"], text


def test_gc_keeps_the_package_layers_current_outputs_use(env, tmp_path):
    from builder.cli.main import main
    assert finish(build(env))[0] == 0
    layers = Path(env["PMEM_IMAGE_OUT"]) / ".cache" / "layers"
    stale = layers / "0123456789abcdef0123456789abcdef"
    stale.mkdir()
    (stale / "debian~x86-64.manifest").write_text("{}")
    assert main(["gc", "--out", env["PMEM_IMAGE_OUT"]]) == 0
    assert sorted(p.name for p in layers.iterdir()) == [_layer(env)["name"]]
