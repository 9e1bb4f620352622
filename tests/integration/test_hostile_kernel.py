"""The hostile-input corpus for kernel sources: a tree whose own build code tries to make root write or
read outside the sandbox through what it leaves behind (links in O= and in the install tree, a '..'
release), to read root's environment, or to run code through its .git/config. Each case is refused (or
harmless) and leaves its canary, a root-owned file outside the build, untouched."""

import os
import subprocess
from pathlib import Path

import pytest

from builder.build import kernel
from builder.build.hashing import sha256_of_tree
from builder.build.kernel_sources import KernelError
from builder.runner import CommandFailed, Runner
from conftest import plan_of_text

pytestmark = [pytest.mark.integration, pytest.mark.hostile,
              pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops root; only root can show it")]
SECRET = "pmem-image-canary-token-3b1f"


def hostile_tree(tmp_path: Path, recipe: dict[str, str]) -> Path:
    """A kernel tree whose Makefile runs RECIPE[target] for each target the build calls."""
    tree = tmp_path / "src" / "linux"
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    rules = {"x86_64_defconfig tinyconfig": "\techo CONFIG_X=y > $(O)/.config",
             "olddefconfig": "\t@true",
             "bzImage modules": "\tmkdir -p $(O)/arch/x86/boot && echo kernel > $(O)/arch/x86/boot/bzImage",
             "kernelrelease": "\t@echo 6.1.5-pmem",
             "modules_install": "\tmkdir -p $(INSTALL_MOD_PATH)/lib/modules/6.1.5-pmem/kernel"}
    for targets, commands in recipe.items():
        rules = {k: v for k, v in rules.items() if not set(k.split()) & set(targets.split())}
        rules[targets] = commands
    makefile = "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 5\n" + "".join(f"{t}:\n{c}\n" for t, c in rules.items())
    (tree / "Makefile").write_text(makefile)
    merge = tree / "scripts" / "kconfig" / "merge_config.sh"
    merge.write_text("#!/bin/sh\ntrue\n")
    merge.chmod(0o755)
    return tree


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A root-only file outside every directory the sandbox may write."""
    path = tmp_path / "host" / "canary"
    path.parent.mkdir(mode=0o700)
    path.write_text("root's own data\n")
    path.chmod(0o600)
    return path


def build_kernel(tmp_path: Path, tree: Path, monkeypatch) -> kernel.KernelArtifact | None:
    monkeypatch.setattr(kernel, "check_survival", lambda plan, source, config: None)   # the options are fake
    monkeypatch.setenv("PMEM_IMAGE_SECRET_TOKEN", SECRET)
    profile = tmp_path / "p.yaml"
    profile.write_text("name: k\ndistribution: {name: debian, release: bookworm}\n"
                       "kernel: {source: tree, version: '6.1', path: src/linux}\npmem: [{memmap: 1G!4G}]\n")
    plan = plan_of_text(profile.read_text(), str(profile))[0]
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return kernel.prepare_kernel(plan, tmp_path / "out", Runner(), logs)


def test_a_well_behaved_tree_installs(tmp_path, monkeypatch):
    artifact = build_kernel(tmp_path, hostile_tree(tmp_path, {}), monkeypatch)
    modules = artifact.tree / "usr/lib/modules/6.1.5-pmem"
    assert (modules / "vmlinuz").read_text() == "kernel\n" and (modules / "config").is_file()
    assert os.lstat(modules / "vmlinuz").st_uid == 0


def test_a_config_left_as_a_link_to_a_host_file_is_never_read(tmp_path, monkeypatch, canary):
    tree = hostile_tree(tmp_path, {"olddefconfig": f"\tln -sf {canary} $(O)/.config"})
    with pytest.raises(KernelError, match="no readable .config"):
        build_kernel(tmp_path, tree, monkeypatch)


def test_a_fragment_name_left_as_a_link_is_replaced_not_written_through(tmp_path, monkeypatch, canary):
    build = tmp_path / "out" / ".cache" / "kernel-build"
    tree = hostile_tree(tmp_path, {})
    stale = [build / f"{sha256_of_tree(tree)[:16]}-{base}" for base in ("tinyconfig", "defconfig")]
    for directory in stale:
        directory.mkdir(parents=True)
        (directory / "pmem-image.config").symlink_to(canary)     # what a previous run of the sandbox left
    build_kernel(tmp_path, tree, monkeypatch)
    assert canary.read_text() == "root's own data\n"
    assert any((d / "pmem-image.config").is_file() and not (d / "pmem-image.config").is_symlink() for d in stale)


def test_a_release_with_dotdot_is_refused(tmp_path, monkeypatch, canary):
    tree = hostile_tree(tmp_path, {"kernelrelease": f"\t@echo ../../../../../{canary.parent.name}/x"})
    with pytest.raises(KernelError, match="not a kernel release"):
        build_kernel(tmp_path, tree, monkeypatch)
    assert sorted(p.name for p in canary.parent.iterdir()) == ["canary"]


def test_an_install_tree_whose_modules_directory_is_a_link_out_writes_nothing_there(tmp_path, monkeypatch, canary):
    tree = hostile_tree(tmp_path, {"modules_install":
                                   f"\tmkdir -p $(INSTALL_MOD_PATH)/lib/modules && ln -s {canary.parent} "
                                   "$(INSTALL_MOD_PATH)/lib/modules/6.1.5-pmem"})
    with pytest.raises((KernelError, CommandFailed)):
        build_kernel(tmp_path, tree, monkeypatch)
    assert sorted(p.name for p in canary.parent.iterdir()) == ["canary"]
    assert canary.read_text() == "root's own data\n"


def test_an_install_tree_with_a_link_to_a_host_file_is_refused(tmp_path, monkeypatch, canary):
    tree = hostile_tree(tmp_path, {"modules_install":
                                   "\tmkdir -p $(INSTALL_MOD_PATH)/lib/modules/6.1.5-pmem/kernel && "
                                   f"ln -s {canary} $(INSTALL_MOD_PATH)/lib/modules/6.1.5-pmem/kernel/x.ko"})
    with pytest.raises(KernelError, match="a link out of the image tree"):
        build_kernel(tmp_path, tree, monkeypatch)
    assert not list((tmp_path / "out" / ".cache" / "kernels").glob("*/tree"))   # nothing kept


def test_the_sandbox_never_sees_roots_environment(tmp_path, monkeypatch):
    tree = hostile_tree(tmp_path, {"bzImage modules": "\tmkdir -p $(O)/arch/x86/boot && env > $(O)/env-seen && "
                                                      "echo kernel > $(O)/arch/x86/boot/bzImage"})
    build_kernel(tmp_path, tree, monkeypatch)
    (seen,) = (tmp_path / "out" / ".cache" / "kernel-build").glob("*/env-seen")
    text = seen.read_text()
    assert SECRET not in text and "KBUILD_BUILD_TIMESTAMP=" in text


def test_a_trees_git_configuration_is_never_run(tmp_path, canary):
    """core.fsmonitor and diff.external run programs in git as root; the identity does not use git, and
    untracked files count."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\n")
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", "add", "."], check=True)
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
                   check=True)
    witness = tmp_path / "git-ran"
    with open(tree / ".git" / "config", "a") as config:
        config.write(f"[core]\n\tfsmonitor = touch {witness}\n[diff]\n\texternal = touch {witness}\n")
    before = sha256_of_tree(tree)
    assert not witness.exists()
    (tree / "untracked.c").write_text("int x;\n")
    assert sha256_of_tree(tree) != before and not witness.exists()
