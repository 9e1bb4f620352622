"""The README's first command on the hosts users have: a fresh Debian 12 with its security suite listed (so
updates of apt, dpkg, libc6 and systemd are pending) and a fresh Debian 13, each made here with debootstrap
and entered with chroot, the checkout copied in, nothing installed by hand. Both bootstrap, build and prove
the default image, and the two images are the same bytes. The trees share the image package store and the
package layers of the boot tier (out/test/.cache), so the packages are downloaded once."""

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli import BUILD_LOCK, OUT
from conftest import ROOT
from host_trees import copy_checkout, entered, in_tree, make_tree

pytestmark = [pytest.mark.boot, pytest.mark.hosts,
              pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap, chroot and mkosi need root"),
              pytest.mark.skipif(shutil.which("debootstrap") is None, reason="scripts/bootstrap installs debootstrap")]
HOSTS = ROOT / "out" / "hosts"
SHARED_CACHE = OUT / ".cache"
ARTIFACTS = ("default.raw", "default.vmlinuz", "default.initrd")
FIRST_COMMAND = "./pmem-image build --verify --json profiles/default.yaml"
# Then the templates of that build, one per writer that bootstrap pins: qemu-img (qcow2 compressed, vmdk with its
# CID, vhd with its footer's time and GUID) and tar + gzip (gce).
EXPORTS = ("qcow2", "vmdk", "vhd", "gce")
EXPORT_COMMAND = "./pmem-image export --json " + " ".join(f"--format {f}" for f in EXPORTS) + " out/default"


@pytest.fixture(scope="module")
def host_runs() -> dict:
    """release -> exit code, report, {artifact: sha256}, {export: sha256}, toolchain and the seconds of the
    README's first command there and of the exports after it."""
    shutil.rmtree(HOSTS, ignore_errors=True)
    runs = {}

    def prepared(release: str) -> Path:
        tree = HOSTS / release
        make_tree(tree, release)
        copy_checkout(tree / "root" / "pmem-image")
        return tree

    # Both trees are debootstrapped at once and beside the first tree's build (downloads and unpacking, no
    # image build): only the first commands, which build and boot, run one after the other.
    with ThreadPoolExecutor(max_workers=2) as pool:
        trees = {release: pool.submit(prepared, release) for release in ("bookworm", "trixie")}
        for release in ("bookworm", "trixie"):
            runs[release] = _first_command(trees[release].result())
    yield runs
    shutil.rmtree(HOSTS, ignore_errors=True)


def _first_command(tree: Path) -> dict:
    """The README's first command in a prepared tree: its exit code, report, artifact sums and toolchain."""
    with entered(tree, SHARED_CACHE) as checkout:
        pending = in_tree(tree, "apt-get update -qq && apt-get -s upgrade | grep -c ^Inst || true", 600)
        # The tree's build takes turns with the other boot-tier worker's on the lock under the shared cache.
        lock = f"PMEM_IMAGE_BUILD_LOCK=/root/pmem-image/out/.cache/{BUILD_LOCK.relative_to(SHARED_CACHE)}"
        started = time.monotonic()
        result = in_tree(tree, f"cd /root/pmem-image && {lock} {FIRST_COMMAND}", 2400)
        built = time.monotonic()
        exported = in_tree(tree, f"cd /root/pmem-image && {EXPORT_COMMAND}", 1200) if result.returncode == 0 else None
        seconds = {"first command": round(built - started), "exports": round(time.monotonic() - built)}
        manifest_path = checkout / "out" / "default" / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return {"rc": result.returncode, "report": report, "stderr": result.stderr[-4000:],
            "pending": pending.stdout.strip(),
            "sha256": {f["name"]: f["sha256"] for f in manifest.get("files", []) if f["name"] in ARTIFACTS},
            "exports": {a["format"]: a["sha256"] for a in manifest.get("artifacts", [])},
            "export_log": exported.stderr[-3000:] if exported else "not run: the first command failed",
            "toolchain": manifest.get("toolchain", {}), "seconds": seconds}


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_the_readme_first_command_builds_and_proves_default_on_a_fresh_host(host_runs, release):
    run = host_runs[release]
    assert run["rc"] == 0, run["stderr"]
    assert run["report"].get("passed"), run["report"]
    names = [c["name"] for c in run["report"]["checks"]]
    assert "/dev/pmem0 DAX active" in names and "/dev/pmem0 MAP_SYNC" in names
    assert set(run["sha256"]) == set(ARTIFACTS)


def test_a_fresh_debian_12_has_updates_pending_and_bootstrap_takes_them(host_runs):
    """The tree had upgrades pending when its first command ran (the case bootstrap once refused)."""
    assert int(host_runs["bookworm"]["pending"] or 0) > 0


def test_both_hosts_write_the_same_bytes_with_the_same_pinned_tools(host_runs):
    bookworm, trixie = host_runs["bookworm"], host_runs["trixie"]
    assert bookworm["sha256"] and bookworm["sha256"] == trixie["sha256"]
    pinned = ("mkosi", "systemd", "e2fsprogs", "dosfstools", "mtools", "cpio", "zstd", "qemu-utils", "tar", "gzip")
    assert all(bookworm["toolchain"].get(p) == trixie["toolchain"].get(p) is not None for p in pinned)
    assert bookworm["toolchain"]["apt"] != trixie["toolchain"]["apt"]      # really two hosts
    print(f"\nboth hosts: {bookworm['sha256']}; seconds: bookworm {bookworm['seconds']}, trixie {trixie['seconds']}")


def test_both_hosts_export_the_same_templates_with_the_pinned_qemu_img_tar_and_gzip(host_runs):
    """The templates are bytes the user publishes: the same on either host, written by the prefix's qemu-img,
    tar and gzip (bookworm's own qemu-img is 7.2 and trixie's 10.0; tar 1.34 and 1.35)."""
    bookworm, trixie = host_runs["bookworm"], host_runs["trixie"]
    for run in (bookworm, trixie):
        assert set(run["exports"]) == set(EXPORTS), run["export_log"]
        assert "qemu-img" not in run["toolchain"] and run["toolchain"]["tar"] == "1.34+dfsg-1.2+deb12u1"   # not the host's
    assert bookworm["exports"] == trixie["exports"], (bookworm["export_log"], trixie["export_log"])
    print(f"\nboth hosts' exports: {bookworm['exports']}")
