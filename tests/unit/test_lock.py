"""PROFILE.lock with the stand-in mkosi: lock a build, build with the lock (pinned in the rendered tree,
checked after mkosi), refuse a build that got other versions or other package files, --offline, a stale
lock, and store gc."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.profile.errors import ProfileError
from builder.render.outputs import render
from conftest import CLI_WITHOUT_ROOT_CHECK, PROFILES, ROOT, plan_of_file


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def locked(env, tmp_path):
    """default.yaml copied beside where its lock goes, built once, then locked."""
    profile = tmp_path / "default.yaml"
    profile.write_text((PROFILES / "default.yaml").read_text())
    assert cli(env, "build", str(profile)).returncode == 0
    result = cli(env, "lock", str(profile))
    assert result.returncode == 0, result.stderr
    return profile


def test_lock_names_every_package_with_its_file_sha256(env, locked):
    lock = json.loads(locked.with_suffix(".lock").read_text())
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    image = {p["name"] for p in lock["packages"] if p["scope"] == "image"}
    build = {p["name"] for p in lock["packages"] if p["scope"] == "build"}
    assert set(plan.packages) <= image and set(plan.build_packages) - image <= build
    # mkosi's default initrd installs packages of its own (lvm2 ...): the lock pins those as well.
    assert [p["name"] for p in lock["packages"] if p["scope"] == "initrd"] == ["lvm2"]
    cache = Path(env["PMEM_IMAGE_OUT"]) / ".cache" / "packages" / "debian~bookworm" / "cache" / "apt" / "archives"
    first = lock["packages"][0]
    assert first["file"] == f"{first['name']}_1.0_amd64.deb" and (cache / first["file"]).exists()
    assert lock["distribution"] == "debian" and lock["release"] == "bookworm" and lock["mkosi_version"] == "24.3"


def test_a_locked_plan_pins_every_package_and_is_another_identity(locked):
    unlocked, _ = plan_of_file(PROFILES / "default.yaml")
    plan, _ = plan_of_file(locked)
    assert plan.digest() != unlocked.digest() and len(plan.locked_packages) > len(plan.packages)
    files = render(plan)
    conf = files["mkosi.conf"].content
    assert "        ndctl=1.0" in conf and "        gcc=1.0" in conf
    preferences = files["mkosi.pkgmngr/etc/apt/preferences.d/pmem-image-lock.pref"].content
    assert "Package: ndctl\nPin: version 1.0\nPin-Priority: 1001" in preferences
    assert "mkosi.pkgmngr/etc/apt/preferences.d/pmem-image-lock.pref" not in render(unlocked)


def test_a_build_with_the_lock_gets_exactly_the_locked_packages(env, locked):
    result = cli(env, "build", "--force", str(locked))
    assert result.returncode == 0, result.stderr


def test_other_versions_or_other_package_files_are_refused(env, locked):
    out = Path(env["PMEM_IMAGE_OUT"]) / "default"
    before = (out / "manifest.json").read_text()
    env["FAKE_PACKAGE_VERSION"] = "2.0"           # the mirror moved on
    result = cli(env, "build", "--force", str(locked))
    assert result.returncode == 3 and "did not get the locked packages" in result.stderr
    assert "dbus 2.0 (locked 1.0)" in result.stderr
    # Every locked package moved, the one only the initrd has (lvm2) included: ten are named, the rest counted.
    assert f"(and {len(json.loads(locked.with_suffix('.lock').read_text())['packages']) - 10} more versions)" in result.stderr
    env["FAKE_PACKAGE_VERSION"] = "1.0"
    env["FAKE_DEB_SALT"] = "rebuilt"              # the same version, other bytes
    result = cli(env, "build", "--force", str(locked))
    assert result.returncode == 3 and "dbus_1.0_amd64.deb differs from the lock's sha256" in result.stderr
    assert "more files)" in result.stderr        # ten are named, the rest counted
    assert (out / "manifest.json").read_text() == before


def test_offline_builds_take_packages_from_the_cache_only(env, locked):
    result = cli(env, "build", "--force", "--offline", str(locked))
    assert result.returncode == 0, result.stderr
    assert "--cache-only=always" in (Path(env["FAKE_MKOSI_STATE"]) / "args").read_text()


def test_a_lock_that_does_not_cover_the_profile_is_bad_input(locked):
    locked.write_text(locked.read_text() + "packages: [fio]\n")
    with pytest.raises(ProfileError, match="the lock does not name fio"):
        plan_of_file(locked)
    locked.with_suffix(".lock").write_text("{}")
    with pytest.raises(ProfileError, match="not a pmem-image lock file"):
        plan_of_file(locked)


def test_lock_without_a_build_is_refused(env, tmp_path):
    profile = tmp_path / "default.yaml"
    profile.write_text((PROFILES / "default.yaml").read_text())
    result = cli(env, "lock", str(profile))
    assert result.returncode == 2 and "build it first" in result.stderr and not profile.with_suffix(".lock").exists()


def test_store_gc_keeps_what_builds_and_locks_name(env, locked):
    cache = Path(env["PMEM_IMAGE_OUT"]) / ".cache" / "packages" / "debian~bookworm" / "cache" / "apt" / "archives"
    (cache / "stale_0.1_amd64.deb").write_text("old")
    result = cli(env, "store", "gc", str(locked.with_suffix(".lock")))
    assert result.returncode == 0 and "removed 1 file(s)" in result.stdout
    assert not (cache / "stale_0.1_amd64.deb").exists() and (cache / "ndctl_1.0_amd64.deb").exists()


def test_gc_keeps_the_packages_a_lock_names_so_it_still_builds_offline(env, locked):
    """gc trims the package store as store gc does (review L9): it used to delete every package file, the ones
    a locked profile's --offline build needs among them."""
    out = Path(env["PMEM_IMAGE_OUT"])
    cache = out / ".cache" / "packages" / "debian~bookworm" / "cache" / "apt" / "archives"
    (cache / "stale_0.1_amd64.deb").write_text("old")
    shutil.rmtree(out / "default")                     # no build names them now; the lock still does
    result = cli(env, "gc", str(locked.with_suffix(".lock")))
    assert result.returncode == 0, result.stderr
    assert not (cache / "stale_0.1_amd64.deb").exists() and (cache / "ndctl_1.0_amd64.deb").exists()
    offline = cli(env, "build", "--offline", str(locked))
    assert offline.returncode == 0, offline.stderr
