"""Kernels built from source: configure the source with the fragments, check that every requested
option survived, compile once per (source, .config, compiler), and install it into a tree that mkosi
adds to the image (usr/lib/modules/<release>/vmlinuz, modules, config)."""

import hashlib
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..knowledge.kconfig import index_kconfig, lost_options, options_text, parse_dotconfig
from ..plan.model import Plan
from ..runner import Runner
from .kernel_sandbox import KbuildSandbox
from .kernel_sources import KernelError, check_version, makefile_version, obtain_source

RECIPE_VERSION = "3"       # bump when the commands below change what a given .config produces (3: install too)
LOCALVERSION = "-pmem"
# Run inside the sandbox after modules_install: the kernel and its config into the tree ($1 the modules
# directory, $2 boot/, $3 the O= directory, $4 the release); modules_install's links to the build go.
INSTALL_SCRIPT = ('set -e; mkdir -p "$1" "$2"; cp "$3/arch/x86/boot/bzImage" "$1/vmlinuz"; cp "$3/.config" "$1/config"; '
                  'cp "$3/.config" "$2/config-$4"; rm -f "$1/build" "$1/source"')
BUILD_ENV = {"KBUILD_BUILD_TIMESTAMP": "2026-01-01 00:00:00 UTC", "KBUILD_BUILD_USER": "pmem-image",
             "KBUILD_BUILD_HOST": "pmem-image", "ARCH": "x86_64", "LOCALVERSION": LOCALVERSION}


# What `make kernelrelease` may print: it names a directory root creates, so never a path.
RELEASE_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$")


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


def _write_new(path: Path, text: str) -> None:
    """Create `path` afresh in a directory the sandbox owns: whatever stood there (a symlink to a host
    file included) is removed, and the new file is never opened through a link."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)


def read_untrusted(path: Path, limit: int = 16 << 20) -> str:
    """A regular file the sandbox wrote, read without following a link at its name (root must not be made
    to read /etc/shadow through it); its parent directory is root's."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise KernelError(f"the kernel build left no readable {path.name} ({error.strerror})",
                          "the kernel source's build did not produce it; see the kernel build log") from None
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise KernelError(f"the kernel build left {path} as something other than a regular file",
                              "a kernel source whose build does that is refused")
        return stream.read(limit).decode(errors="replace")


def configure(plan: Plan, source: Path, build: Path, runner: Runner, log: Path) -> str:
    """Start config + merged fragments + olddefconfig; returns the final .config text."""
    build.mkdir(parents=True, exist_ok=True)
    sandbox = KbuildSandbox(source, (build,))
    sandbox.hand_over()
    fragment = build / "pmem-image.config"
    _write_new(fragment, options_text(plan.kernel_options))
    start = "tinyconfig" if plan.kernel_base == "tinyconfig" else "x86_64_defconfig"
    runner.run(sandbox.argv(_make(source, build, start), build), log=log)
    runner.run(sandbox.argv([str(source / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build),
                             str(build / ".config"), str(fragment)], build, BUILD_ENV), log=log)
    runner.run(sandbox.argv(_make(source, build, "olddefconfig"), build), log=log)
    return read_untrusted(build / ".config")


def check_release(release: str) -> str:
    if not RELEASE_PATTERN.match(release) or ".." in release:
        raise KernelError(f"the kernel source reports release {release[:80]!r}, which is not a kernel release",
                          "a release is letters, digits and . + _ - only (it names /usr/lib/modules/RELEASE)")
    return release


def check_installed_tree(tree: Path, release: str) -> None:
    """What root keeps of the sandbox's install: directories, regular files (no set-id bits) and symlinks
    that stay inside the tree, the kernel and its config where they belong."""
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            entry = Path(root) / name
            mode = os.lstat(entry).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(entry)
                resolved = os.path.normpath(os.path.join(root, target))
                if os.path.isabs(target) or not (resolved + "/").startswith(str(tree) + "/"):
                    raise KernelError(f"the kernel install left {entry.relative_to(tree)} -> {target}, a link out "
                                      "of the image tree", "a kernel source whose install does that is refused")
            elif not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)) or mode & (stat.S_ISUID | stat.S_ISGID):
                raise KernelError(f"the kernel install left {entry.relative_to(tree)} with mode {mode:o}",
                                  "only directories, plain files and links inside the tree are kept")
    modules = tree / "usr" / "lib" / "modules" / release
    for needed in (modules / "vmlinuz", modules / "config", tree / "boot" / f"config-{release}"):
        inside = [needed, *(p for p in needed.parents if tree in p.parents)]
        if not needed.is_file() or any(p.is_symlink() for p in inside):
            raise KernelError(f"the kernel install has no plain {needed.relative_to(tree)}",
                              "see the kernel build log")


def check_survival(plan: Plan, source: Path, config: str) -> None:
    kconfig_files = {}
    for root, _, names in os.walk(source):            # never through a link the source holds
        for name in names:
            path = Path(root) / name
            if name.startswith("Kconfig") and stat.S_ISREG(os.lstat(path).st_mode):
                kconfig_files[str(path.relative_to(source))] = path.read_text(errors="replace")
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
    # All the sandbox sees of an environment. ccache's depend mode hashes the headers the compiler's -MD
    # output names instead of running the preprocessor once more on every miss: a cold build (the first one
    # of a kernel, and every CI run) took 22% less CPU for fs/ext4 here.
    env = {**BUILD_ENV, "CCACHE_DIR": str(cache / "ccache"), "CCACHE_DEPEND": "1"}
    cc = ["CC=ccache gcc"] if shutil.which("ccache") else []
    jobs = f"-j{os.cpu_count() or 1}"
    staging = Path(tempfile.mkdtemp(prefix=".kernel-", dir=cache))
    try:
        tree = staging / "tree"
        # The source's own Makefiles run as an unprivileged user that may write only these directories.
        sandbox = KbuildSandbox(source, (build, cache / "ccache", tree))
        sandbox.hand_over()
        runner.say(f"kernel: compiling ({jobs}, sandboxed; log {log})")
        runner.run(sandbox.argv([*_make(source, build, jobs, "bzImage", "modules"), *cc], build, env), log=log,
                   show=_compile_progress())
        release = check_release(runner.capture(sandbox.argv(_make(source, build, "-s", "kernelrelease"), build,
                                                            env)).strip())
        modules = tree / "usr" / "lib" / "modules" / release
        runner.run(sandbox.argv(_make(source, build, f"INSTALL_MOD_PATH={tree / 'usr'}", "INSTALL_MOD_STRIP=1",
                                      "modules_install"), build, env), log=log)
        # The copies are the sandbox's too: root never opens a path the build could have made a link.
        runner.run(sandbox.argv(["sh", "-c", INSTALL_SCRIPT, "install", str(modules), str(tree / "boot"), str(build),
                                 release], build), log=log)
        sandbox.take_back(tree)
        check_installed_tree(tree, release)
        shutil.copyfile(log, staging / "build.log")
        (staging / ".complete").write_text(release + "\n")
        shutil.rmtree(artifact, ignore_errors=True)
        artifact.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, artifact)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return KernelArtifact(release, artifact / "tree", config, key, artifact / "build.log", True)
