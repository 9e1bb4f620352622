"""The default initrd's installed tree, shared between package layers: keyed by what decides it (not the
image's packages), lent by the first layer that installed it, borrowed as hard links by new layers."""

import os
from pathlib import Path

from builder.build.layers import borrow_initrd, initrd_key, layer_is_built, lend_initrd
from builder.profile.lock import LockedPackage
from builder.render.outputs import render
from builder.runner import Runner
from conftest import PROFILES, plan_of_text

DEFAULT = (PROFILES / "default.yaml").read_text()
TREE, MANIFEST = "debian~bookworm~x86-64~default-initrd.cache", "debian~bookworm~x86-64~default-initrd.manifest"


def key_of(text: str) -> str:
    plan = plan_of_text(text, "p.yaml")[0]
    return initrd_key(plan, render(plan), "24.3")


def test_the_images_packages_do_not_decide_the_initrd_but_the_release_and_a_lock_do():
    assert key_of(DEFAULT + "packages: [strace]\n") == key_of(DEFAULT) == key_of(DEFAULT.replace("size: 1G", "size: 2G"))
    assert key_of(DEFAULT.replace("release: bookworm", "release: trixie")) != key_of(DEFAULT)
    plan = plan_of_text(DEFAULT, "p.yaml")[0]
    pinned = plan.model_copy(update={"locked_packages": [LockedPackage(
        name="udev", version="252.39-1~deb12u2", architecture="amd64", scope="image", file="udev.deb", sha256="0" * 64)]})
    assert initrd_key(pinned, render(pinned), "24.3") != initrd_key(plan, render(plan), "24.3")


def _installed(layer: Path, text: str = "udev 252") -> Path:
    (layer / TREE / "var/lib/dpkg").mkdir(parents=True)
    (layer / TREE / "var/lib/dpkg/status").write_text(text)
    (layer / TREE / "bin").mkdir()
    (layer / TREE / "bin/sh").symlink_to("bash")
    (layer / MANIFEST).write_text("{}")
    return layer


def test_a_layer_lends_its_initrd_and_a_new_layer_borrows_it_as_hard_links(tmp_path):
    first, store, new = _installed(tmp_path / "layers/a"), tmp_path / "initrds/k", tmp_path / "layers/b"
    lend_initrd(first, store, Runner())
    assert (store / TREE / "var/lib/dpkg/status").read_text() == "udev 252" and (store / MANIFEST).is_file()
    assert borrow_initrd(new, store, Runner())
    status = new / TREE / "var/lib/dpkg/status"
    assert os.stat(status).st_ino == os.stat(first / TREE / "var/lib/dpkg/status").st_ino   # linked, not copied
    assert os.readlink(new / TREE / "bin/sh") == "bash"                                       # symlinks as they are
    assert not layer_is_built(new), "a layer with only the borrowed initrd still installs the image's packages"
    assert not list(store.parent.glob("*.partial"))


def test_a_layer_with_an_initrd_of_its_own_keeps_it_and_the_store_keeps_the_first(tmp_path):
    store = tmp_path / "initrds/k"
    lend_initrd(_installed(tmp_path / "a", "first"), store, Runner())
    own = _installed(tmp_path / "b", "own")
    assert not borrow_initrd(own, store, Runner()) and (own / TREE / "var/lib/dpkg/status").read_text() == "own"
    lend_initrd(own, store, Runner())
    assert (store / TREE / "var/lib/dpkg/status").read_text() == "first"
    lend_initrd(own, store, Runner(), replace=True)            # a cold build's fresh tree replaces it
    assert (store / TREE / "var/lib/dpkg/status").read_text() == "own"


def test_half_an_initrd_is_neither_lent_nor_borrowed(tmp_path):
    half = tmp_path / "a"
    (half / TREE).mkdir(parents=True)                          # a build killed before mkosi wrote the manifest
    store = tmp_path / "initrds/k"
    lend_initrd(half, store, Runner())
    assert not store.exists() and not borrow_initrd(tmp_path / "b", store, Runner())
