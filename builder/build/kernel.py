"""Kernels built from source: configure the source with the fragments, check that every requested
option survived, compile once per (source, .config, compiler), and install it into a tree that mkosi
adds to the image (usr/lib/modules/<release>/vmlinuz, modules, config)."""

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..knowledge.kconfig import index_kconfig, lost_options, options_text, parse_dotconfig
from ..plan.model import Plan
from ..runner import Runner
from .kernel_sandbox import KbuildSandbox
from .kernel_sources import KernelError, check_version, makefile_version, obtain_source

RECIPE_VERSION = "2"       # bump when the commands below change what a given .config produces (2: sandboxed)
LOCALVERSION = "-pmem"
BUILD_ENV = {"KBUILD_BUILD_TIMESTAMP": "2026-01-01 00:00:00 UTC", "KBUILD_BUILD_USER": "pmem-image",
             "KBUILD_BUILD_HOST": "pmem-image", "ARCH": "x86_64", "LOCALVERSION": LOCALVERSION}


@dataclass(frozen=True)
class KernelArtifact:
    release: str
    tree: Path          # to be added to the image as an extra tree
    config: str
    key: str
    log: Path
    built: bool


def _make(source: Path, build: Path, *targets: str) -> list[str]:
    return ["make", "-C", str(source), f"O={build}", *(f"{k}={v}" for k, v in BUILD_ENV.items()), *targets]


def configure(plan: Plan, source: Path, build: Path, runner: Runner, log: Path) -> str:
    """Start config + merged fragments + olddefconfig; returns the final .config text."""
    build.mkdir(parents=True, exist_ok=True)
    fragment = build / "pmem-image.config"
    fragment.write_text(options_text(plan.kernel_options))
    sandbox = KbuildSandbox(source, (build,))
    sandbox.hand_over()
    start = "tinyconfig" if plan.kernel_base == "tinyconfig" else "x86_64_defconfig"
    runner.run(sandbox.argv(_make(source, build, start), build), log=log)
    runner.run(sandbox.argv([str(source / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build),
                             str(build / ".config"), str(fragment)], build), log=log, env={**os.environ, **BUILD_ENV})
    runner.run(sandbox.argv(_make(source, build, "olddefconfig"), build), log=log)
    return (build / ".config").read_text()


def check_survival(plan: Plan, source: Path, config: str) -> None:
    kconfig_files = {str(p.relative_to(source)): p.read_text(errors="replace") for p in source.rglob("Kconfig*")
                     if p.is_file()}
    lost = lost_options(plan.kernel_options, parse_dotconfig(config), index_kconfig(kconfig_files))
    if lost:
        raise KernelError(f"{len(lost)} requested kernel option(s) did not survive the configuration:\n" +
                          "\n".join(f"  {l.format()}" for l in lost),
                          "add the missing dependencies to a fragment in kernel-fragments/ (and name it in "
                          "kernel.fragments), or pick a kernel version where the option exists")


def _compile_progress() -> Callable[[str], bool | str]:
    """Echo every 250th compiled file as a count, and the link steps."""
    count = 0

    def show(line: str) -> bool | str:
        nonlocal count
        if line.lstrip().startswith("CC"):
            count += 1
            return count % 250 == 0 and f"kernel: {count} files compiled (now {line.split()[-1]})"
        return "Kernel: arch/x86/boot/bzImage" in line or line.lstrip().startswith(("LD      vmlinux", "DEPMOD"))
    return show


def kernel_key(source_sha256: str, config: str, runner: Runner) -> str:
    compiler = runner.capture(["gcc", "--version"]).splitlines()[0]
    digest = hashlib.sha256(f"{source_sha256}\0{config}\0{compiler}\0{RECIPE_VERSION}".encode())
    return digest.hexdigest()


def prepare_kernel(plan: Plan, out_root: Path, runner: Runner, log_dir: Path) -> KernelArtifact | None:
    """The installed kernel tree for a plan that builds its kernel; None for the distro kernel."""
    if plan.kernel_source == "distro":
        return None
    cache = out_root / ".cache"
    log = log_dir / "kernel-build.log"
    runner.say(f"kernel: {plan.kernel_source} {plan.kernel_version}, {plan.kernel_base} + "
               f"{', '.join(plan.kernel_fragments)}")
    if runner.dry_run:
        origin = plan.kernel_url or plan.kernel_path or f"linux-source-{plan.kernel_version}"
        runner.say(f"kernel: would fetch/verify {origin}, configure, check survival and compile unless cached")
        return None
    source, source_sha256 = obtain_source(plan, cache, runner)
    check_version(makefile_version(source), plan.kernel_version, str(source))
    build = cache / "kernel-build" / f"{source_sha256[:16]}-{plan.kernel_base}"
    config = configure(plan, source, build, runner, log)
    check_survival(plan, source, config)
    key = kernel_key(source_sha256, config, runner)
    artifact = cache / "kernels" / key
    if (artifact / ".complete").exists():
        runner.say(f"kernel: cached build {key[:16]} (same source, .config and compiler)")
        release = (artifact / ".complete").read_text().strip()
        shutil.copyfile(artifact / "build.log", log)
        return KernelArtifact(release, artifact / "tree", config, key, artifact / "build.log", False)
    env = {**os.environ, **BUILD_ENV, "CCACHE_DIR": str(cache / "ccache")}
    cc = ["CC=ccache gcc"] if shutil.which("ccache") else []
    jobs = f"-j{os.cpu_count() or 1}"
    staging = Path(tempfile.mkdtemp(prefix=".kernel-", dir=cache))
    try:
        tree = staging / "tree"
        # The source's own Makefiles run as an unprivileged user that may write only these directories.
        sandbox = KbuildSandbox(source, (build, cache / "ccache", tree))
        sandbox.hand_over()
        runner.say(f"kernel: compiling ({jobs}, sandboxed; log {log})")
        runner.run(sandbox.argv([*_make(source, build, jobs, "bzImage", "modules"), *cc], build), log=log,
                   show=_compile_progress(), env=env)
        release = runner.capture(sandbox.argv(_make(source, build, "-s", "kernelrelease"), build)).strip()
        modules = tree / "usr" / "lib" / "modules" / release
        runner.run(sandbox.argv(_make(source, build, f"INSTALL_MOD_PATH={tree / 'usr'}", "INSTALL_MOD_STRIP=1",
                                      "modules_install"), build), log=log, env=env)
        sandbox.take_back(tree)
        modules.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build / "arch/x86/boot/bzImage", modules / "vmlinuz")
        shutil.copyfile(build / ".config", modules / "config")
        (tree / "boot").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build / ".config", tree / "boot" / f"config-{release}")
        for link in ("build", "source"):
            (modules / link).unlink(missing_ok=True)
        shutil.copyfile(log, staging / "build.log")
        (staging / ".complete").write_text(release + "\n")
        shutil.rmtree(artifact, ignore_errors=True)
        artifact.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, artifact)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return KernelArtifact(release, artifact / "tree", config, key, artifact / "build.log", True)
