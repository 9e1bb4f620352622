"""Checks of what makes an image usable: users, keys, SSH and network, extra trees, disk size."""

import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from ..profile.errors import Problem
from ..profile.sizes import GIB, format_size
from ..knowledge.proof_paths import must_stay_directory, protected_reason
from .checks import CheckContext, check, default_mountpoints

MIN_DISK = 2 * GIB          # the smallest root the shipped distributions fit in, with room to spare
DEBIAN_PACKAGE = r"^[a-z0-9][a-z0-9+.-]+$"


@check
def check_users_are_distinct(ctx: CheckContext) -> Iterable[Problem]:
    seen: dict[str, int] = {}
    for index, user in enumerate(ctx.profile.users):
        if user.name in seen:
            yield Problem(("users", index, "name"), f"user {user.name} is already defined as users[{seen[user.name]}]",
                          "give each user one entry")
        seen.setdefault(user.name, index)


@check
def check_keys_need_ssh(ctx: CheckContext) -> Iterable[Problem]:
    profile = ctx.profile
    if profile.wants_ssh and profile.network == "none":
        yield Problem(("network",), "ssh: true with network: none leaves sshd unreachable",
                      "use network: dhcp (the default with ssh), or drop ssh")
    if profile.wants_ssh:
        return
    owners = [(("users", i, "ssh_authorized_keys"), u.name) for i, u in enumerate(profile.users)
              if u.ssh_authorized_keys] + ([(("root", "ssh_authorized_keys"), "root")]
                                           if profile.root.ssh_authorized_keys else [])
    for path, name in owners:
        yield Problem(path, f"SSH keys for {name}, but the image has no SSH server", "add ssh: true")


@check
def check_package_names(ctx: CheckContext) -> Iterable[Problem]:
    if ctx.release.distribution not in ("debian", "ubuntu"):
        return
    for index, name in enumerate(ctx.profile.packages):
        if not re.match(DEBIAN_PACKAGE, name):
            yield Problem(("packages", index), f"{name!r} is not a {ctx.release.distribution} package name",
                          "Debian package names are lowercase letters, digits and + . - (e.g. fio, libpmem-dev)")


@check
def check_extra_trees(ctx: CheckContext) -> Iterable[Problem]:
    """Each tree is a directory inside the profile's directory, and no symlink in it leads out of it."""
    if ctx.profile_dir is None:
        return
    home = ctx.profile_dir.resolve()
    for index, relative in enumerate(ctx.profile.extra_trees):
        tree = (home / relative).resolve()
        if tree != home and home not in tree.parents:
            yield Problem(("extra_trees", index), f"{relative} is outside the profile's directory ({home})",
                          "keep extra trees next to the profile")
        elif not tree.is_dir():
            yield Problem(("extra_trees", index), f"{relative} is not a directory next to the profile",
                          f"create {tree} with the files to copy onto the image's /")
        elif escaping := next(_escaping_links(tree), None):
            yield Problem(("extra_trees", index), f"{escaping} is a symlink that leads out of {relative}",
                          "replace it with the file itself, or a link inside the tree")


@check
def check_extra_tree_contents(ctx: CheckContext) -> Iterable[Problem]:
    """No tree writes what the boot proof or pmem-image's own files are made of (review M11), and the trees agree
    with each other and with pmem-image on what is a directory (a link where a directory must be would break
    the copy)."""
    if ctx.profile_dir is None:
        return
    home = ctx.profile_dir.resolve()
    mountpoints = tuple(default_mountpoints(ctx.profile).values())
    kinds: dict[PurePosixPath, tuple[bool, int]] = {}      # path -> (is a directory, the tree that made it so)
    for index, relative in enumerate(ctx.profile.extra_trees):
        tree = (home / relative).resolve()
        if not tree.is_dir() or (tree != home and home not in tree.parents):
            continue                                      # check_extra_trees says why
        for root, dirs, names in os.walk(tree):
            for name in sorted(dirs + names):
                path = Path(root) / name
                inside = PurePosixPath(path.relative_to(tree).as_posix())
                is_dir = path.is_dir() and not path.is_symlink()
                if reason := protected_reason(inside, mountpoints):
                    yield Problem(("extra_trees", index), f"{relative}/{inside}: an extra tree may not write /{inside}: "
                                  f"{reason}", "remove it from the tree (pmem-image's own options set what it must)")
                elif not is_dir and must_stay_directory(inside):
                    yield Problem(("extra_trees", index), f"{relative}/{inside} is a {'link' if path.is_symlink() else 'file'}"
                                  f" where the image has pmem-image's directory /{inside}", "make it a directory, or remove it")
                elif inside in kinds and kinds[inside][0] != is_dir:
                    yield Problem(("extra_trees", index), f"{relative}/{inside} is {'a directory' if is_dir else 'not a directory'}"
                                  f" but extra_trees[{kinds[inside][1]}] has {'no directory' if is_dir else 'a directory'} "
                                  "there", "make the trees agree, or remove one of them")
                kinds.setdefault(inside, (is_dir, index))


def _escaping_links(tree: Path) -> Iterator[str]:
    """Relative links that climb out of the tree. Absolute ones are kept: they name a path in the image."""
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            path = Path(root) / name
            if path.is_symlink() and not os.readlink(path).startswith("/"):
                target = Path(os.path.normpath(path.parent / os.readlink(path)))
                if target != tree and tree not in target.parents:
                    yield str(path.relative_to(tree))


@check
def check_disk_size(ctx: CheckContext) -> Iterable[Problem]:
    size = ctx.profile.disk.size
    if size is not None and size < MIN_DISK:
        yield Problem(("disk", "size"), f"a root partition of {format_size(size)} is too small for the "
                      "distribution, its packages and some free space", f"use {format_size(MIN_DISK)} or more")
