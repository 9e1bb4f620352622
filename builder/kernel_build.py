"""Kernels built from source: fetch and verify the source, configure it with the fragments, check
that every requested option survived, compile once per (source, .config, compiler), and install it
into a tree that mkosi adds to the image (usr/lib/modules/<release>/vmlinuz, modules, config)."""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .hashing import sha256_file, sha256_of_tree
from .errors import PmemImageError
from .kconfig import index_kconfig, lost_options, options_text, parse_dotconfig
from .kernels import format_version, parse_version
from .plan import Plan
from .runner import Runner

RECIPE_VERSION = "1"       # bump when the commands below change what a given .config produces
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


class KernelError(PmemImageError):
    pass


def makefile_version(source: Path) -> tuple[int, int, int]:
    try:
        text = (source / "Makefile").read_text(errors="replace")[:2000]
    except OSError:
        raise KernelError(f"{source} has no Makefile", "point kernel.path (or the tarball) at a kernel source tree")
    fields = {k: int(v) for k, v in re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d+)\s*$", text, re.M)}
    if set(fields) != {"VERSION", "PATCHLEVEL", "SUBLEVEL"}:
        raise KernelError(f"{source}/Makefile does not say VERSION, PATCHLEVEL and SUBLEVEL", "is this a kernel tree?")
    return fields["VERSION"], fields["PATCHLEVEL"], fields["SUBLEVEL"]


def check_version(found: tuple[int, int, int], wanted: str, where: str) -> None:
    expected = parse_version(wanted)
    exact = wanted.count(".") == 2
    if (found if exact else found[:2]) != (expected if exact else expected[:2]):
        raise KernelError(f"{where} is Linux {format_version(found)}, the profile says kernel.version {wanted}",
                          f"set kernel.version: \"{format_version(found)}\" or use the source you meant")


def _download(url: str, destination: Path, runner: Runner) -> None:
    runner.say(f"downloading {url}")
    partial = destination.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise KernelError(f"cannot download {url}: {error}", "check kernel.url and the network")
    partial.rename(destination)


def fetch_tarball(plan: Plan, cache: Path, runner: Runner) -> Path:
    """The tarball, checked against kernel.sha256 before anything is unpacked."""
    url = plan.kernel_url or ""
    if "://" in url:
        tarball = cache / "downloads" / f"{plan.kernel_sha256}-{Path(url.split('?')[0]).name}"
        if not tarball.exists():
            tarball.parent.mkdir(parents=True, exist_ok=True)
            _download(url, tarball, runner)
    else:
        tarball = Path(url)
        if not tarball.is_file():
            raise KernelError(f"kernel tarball {tarball} does not exist", "fix kernel.url (relative to the profile)")
    actual = sha256_file(tarball)
    if actual != plan.kernel_sha256:
        if "://" in url:
            tarball.unlink()
        raise KernelError(f"{url}: sha256 is {actual}, the profile says {plan.kernel_sha256}",
                          "the download is not the tarball the profile names; nothing was unpacked")
    return tarball


def debian_source_path(plan: Plan) -> tuple[str, Path]:
    """The linux-source-X.Y package for the plan's kernel version and the tarball it installs."""
    series = ".".join(plan.kernel_version.split(".")[:2])
    return series, Path(f"/usr/src/linux-source-{series}.tar.xz")


def debian_source_tarball(plan: Plan, runner: Runner) -> Path:
    series, tarball = debian_source_path(plan)
    if not tarball.exists():
        runner.run(["apt-get", "install", "-y", "--no-install-recommends", f"linux-source-{series}"])
        if not tarball.exists() and not runner.dry_run:
            raise KernelError(f"linux-source-{series} did not provide {tarball}",
                              f"check that Debian has linux-source-{series} (apt-cache policy linux-source-{series})")
    return tarball


def unpack(tarball: Path, sha256: str, cache: Path, runner: Runner) -> Path:
    """Unpack once into the cache; returns the source tree (the tarball's single top directory)."""
    target = cache / "kernel-src" / sha256[:32]
    if not (target / ".unpacked").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            runner.run(["tar", "-C", str(staging), "-xf", str(tarball)])
            (staging / ".unpacked").write_text(f"{tarball}\n")
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    tops = [p for p in target.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 else target


def obtain_source(plan: Plan, cache: Path, runner: Runner) -> tuple[Path, str]:
    if plan.kernel_source == "tree":
        path = Path(plan.kernel_path or "")
        if not path.is_dir():
            raise KernelError(f"kernel tree {path} does not exist", "fix kernel.path (relative to the profile)")
        return path, sha256_of_tree(path)
    tarball = fetch_tarball(plan, cache, runner) if plan.kernel_source == "tarball" else \
        debian_source_tarball(plan, runner)
    sha256 = plan.kernel_sha256 if plan.kernel_source == "tarball" else sha256_file(tarball)
    return unpack(tarball, sha256, cache, runner), sha256


def _make(source: Path, build: Path, *targets: str) -> list[str]:
    return ["make", "-C", str(source), f"O={build}", *(f"{k}={v}" for k, v in BUILD_ENV.items()), *targets]


def configure(plan: Plan, source: Path, build: Path, runner: Runner, log: Path) -> str:
    """Start config + merged fragments + olddefconfig; returns the final .config text."""
    build.mkdir(parents=True, exist_ok=True)
    fragment = build / "pmem-image.config"
    fragment.write_text(options_text(plan.kernel_options))
    start = "tinyconfig" if plan.kernel_base == "tinyconfig" else "x86_64_defconfig"
    runner.run(_make(source, build, start), log=log)
    runner.run([str(source / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build), str(build / ".config"),
                str(fragment)], cwd=build, log=log, env={**os.environ, **BUILD_ENV})
    runner.run(_make(source, build, "olddefconfig"), log=log)
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


def kernel_key(source_sha256: str, config: str) -> str:
    compiler = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
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
    key = kernel_key(source_sha256, config)
    artifact = cache / "kernels" / key
    if (artifact / ".complete").exists():
        runner.say(f"kernel: cached build {key[:16]} (same source, .config and compiler)")
        release = (artifact / ".complete").read_text().strip()
        shutil.copyfile(artifact / "build.log", log)
        return KernelArtifact(release, artifact / "tree", config, key, artifact / "build.log", False)
    env = {**os.environ, **BUILD_ENV, "CCACHE_DIR": str(cache / "ccache")}
    cc = ["CC=ccache gcc"] if shutil.which("ccache") else []
    jobs = f"-j{os.cpu_count() or 1}"
    runner.say(f"kernel: compiling ({jobs}; log {log})")
    runner.run([*_make(source, build, jobs, "bzImage", "modules"), *cc], log=log, show=_compile_progress(), env=env)
    release = subprocess.run(_make(source, build, "-s", "kernelrelease"), capture_output=True, text=True,
                             check=True).stdout.strip()
    staging = Path(tempfile.mkdtemp(prefix=".kernel-", dir=cache))
    try:
        tree = staging / "tree"
        modules = tree / "usr" / "lib" / "modules" / release
        runner.run([*_make(source, build, f"INSTALL_MOD_PATH={tree / 'usr'}", "INSTALL_MOD_STRIP=1",
                           "modules_install")], log=log, env=env)
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
