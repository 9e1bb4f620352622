"""The package layer's key (what decides the installed packages, nothing else) and the sparse-aware
sha256 the build uses for its multi-GB raw disks."""

import hashlib
import os

import pytest

from builder.build.hashing import sha256_file
from builder.build.layers import layer_key
from builder.render.outputs import render
from conftest import PROFILES, plan_of_file, plan_of_text

DEFAULT = (PROFILES / "default.yaml").read_text()


def key_of(text: str, mkosi: str = "24.3") -> str:
    plan = plan_of_text(text, "p.yaml")[0]
    return layer_key(plan, render(plan), mkosi)


@pytest.mark.parametrize("change", [
    ("size: 1G", "size: 512M"),                       # the pmem layout
    ("cmdline: []", "cmdline: [quiet]"),              # the kernel command line
    ("name: default", "name: elsewhere"),             # the profile's name (and so its seed and hostname)
    ("cpus: 2", "cpus: 1"),                           # the VM
])
def test_what_does_not_decide_the_packages_keeps_the_layer(change):
    assert key_of(DEFAULT.replace(*change)) == key_of(DEFAULT)


@pytest.mark.parametrize("text", [
    DEFAULT + "packages: [strace]\n",                 # another package
    DEFAULT.replace("release: bookworm", "release: trixie"),
])
def test_what_decides_the_packages_makes_a_new_layer(text):
    assert key_of(text) != key_of(DEFAULT)


def test_a_new_mkosi_makes_a_new_layer():
    assert key_of(DEFAULT, "24.4") != key_of(DEFAULT)


def test_a_lock_and_the_package_sources_are_part_of_the_key():
    """A lock pins versions (in Packages= and apt preferences); the sources decide where they come from."""
    plan = plan_of_file(PROFILES / "default.yaml")[0]
    files = render(plan)
    base = layer_key(plan, files, "24.3")
    from builder.profile.lock import LockedPackage
    pinned = plan.model_copy(update={"locked_packages": [LockedPackage(name="ndctl", version="76.1-1", architecture="amd64", scope="image",
                                                                       file="ndctl_76.1-1_amd64.deb", sha256="0" * 64)]})
    assert layer_key(pinned, render(pinned), "24.3") != base
    sources = "mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources"
    moved = {**files, sources: files[sources].__class__("Types: deb\nURIs: http://elsewhere/debian\n")}
    assert layer_key(plan, moved, "24.3") != base


@pytest.mark.parametrize("layout", ["dense", "hole-in-middle", "hole-at-end", "all-hole", "empty", "odd-sizes"])
def test_sparse_aware_sha256_is_the_plain_sha256(tmp_path, layout):
    path = tmp_path / "disk"
    with open(path, "wb") as stream:
        if layout == "dense":
            stream.write(os.urandom(3 << 20))
        elif layout == "hole-in-middle":
            stream.write(b"a" * 5000)
            stream.seek(9 << 20)
            stream.write(b"b" * 7000)
        elif layout == "hole-at-end":
            stream.write(b"c" * 4096)
            stream.truncate(5 << 20)
        elif layout == "all-hole":
            stream.truncate((3 << 20) + 123)
        elif layout == "odd-sizes":
            stream.seek(12345)
            stream.write(b"d" * 100001)
            stream.truncate((2 << 20) + 777)
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_each_release_and_package_source_has_a_package_cache_of_its_own(tmp_path):
    """apt-get update rewrites the package lists in mkosi's package cache for the sources at hand: shared by
    every profile, a trixie build would leave the next offline bookworm build without lists (seen in CI)."""
    from builder.build.mkosi import package_cache_dir
    bookworm = plan_of_text(DEFAULT, "a.yaml")[0]
    other_name = plan_of_text(DEFAULT.replace("name: default", "name: other"), "b.yaml")[0]
    trixie = plan_of_text(DEFAULT.replace("release: bookworm", "release: trixie"), "c.yaml")[0]
    snapshot = plan_of_text(DEFAULT + "mirror: snapshot:2026-11-01T00:00:00Z\n", "d.yaml")[0]
    caches = [package_cache_dir(tmp_path, p) for p in (bookworm, other_name, trixie, snapshot)]
    assert caches[0] == caches[1] and len({caches[0], caches[2], caches[3]}) == 3
