"""mkosi, the image builder: which version is here, running it on a rendered project, and checking the
kernel it put into the image."""

import os
import re
import shutil
from pathlib import Path
from typing import Optional

from ..knowledge.kconfig import lost_options, parse_dotconfig
from ..plan.model import Plan
from ..profile.errors import PmemImageError, UsageError
from ..render.outputs import RenderedFile
from ..runner import Runner
from .kernel import KernelArtifact
from .tree import write_tree

SUPPORTED_SERIES = "24."     # the renderer writes mkosi 24.3 syntax
KEPT_SUFFIXES = (".raw", ".vmlinuz", ".initrd", ".manifest")
# Written by mkosi.finalize (joined into contents.json) and mkosi.build.chroot (the overlay's packages).
CONTENT_LISTINGS = ("contents.tsv", "contents.sha256", "build-packages.tsv")


def tools_dir() -> Optional[Path]:
    """pmem-image's private prefix (scripts/bootstrap unpacks it): mkosi 24.3 and the newer tools it needs
    (systemd-repart & co. 254, mke2fs 1.47.2), so the host's own systemd and e2fsprogs stay as they are.
    $PMEM_IMAGE_TOOLS names another one (the tests' stand-in mkosi)."""
    configured = os.environ.get("PMEM_IMAGE_TOOLS")
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / ".tools" / "bin"
    return path if path.is_dir() else None


def mkosi_executable() -> str:
    """The prefix's mkosi, else one on PATH."""
    tools = tools_dir()
    if tools is not None and (tools / "mkosi").is_file():
        return str(tools / "mkosi")
    found = shutil.which("mkosi")
    if found is None:
        raise PmemImageError("mkosi is not installed", "run scripts/bootstrap (as root): it unpacks mkosi 24.3 "
                                                       "into .tools/")
    return found


def mkosi_version(runner: Runner) -> str:
    """The mkosi's version; 24.x is what the renderer writes for."""
    version = runner.capture([mkosi_executable(), "--version"]).split()[-1]
    if not version.startswith(SUPPORTED_SERIES):
        raise PmemImageError(f"mkosi {version} found; pmem-image renders for mkosi 24.x",
                             "run scripts/bootstrap to install mkosi 24.3 from bookworm-backports")
    return version


def require_root() -> None:
    """The image build runs package managers and writes images with root's tools."""
    if os.geteuid() != 0:
        raise UsageError("building an image needs root (mkosi, package installs, root-owned image files)",
                         "run as root, e.g. sudo ./pmem-image build ...")


def _show_mkosi_step(line: str) -> bool:
    return line.startswith("‣")


def add_extra_trees(project: Path, trees: list[str], files: dict[str, RenderedFile]) -> None:
    """The profile's extra trees, copied into mkosi.extra/ in order (a later tree wins), under pmem-image's
    own files: a tree cannot replace the units and scripts the boot proof relies on."""
    extra = project / "mkosi.extra"
    ours = {Path(path).relative_to("mkosi.extra") for path in files if path.startswith("mkosi.extra/")}
    for tree in map(Path, trees):
        for root, dirs, names in os.walk(tree):
            relative_root = Path(root).relative_to(tree)
            for name in sorted(dirs + names):
                source, relative = Path(root) / name, relative_root / name
                target = extra / relative
                if relative in ours:
                    continue
                if source.is_symlink():
                    target.unlink(missing_ok=True)
                    target.symlink_to(os.readlink(source))
                elif source.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copystat(source, target, follow_symlinks=False)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target, follow_symlinks=False)


def package_cache_dir(out_root: Path, plan: Plan) -> Path:
    """mkosi's package cache, shared by the profiles of one release and package source, so that a second
    profile reuses the downloads. Not by all profiles: it also holds apt's package lists, which apt-get update
    rewrites for the sources at hand (a trixie build would leave a bookworm build offline without lists)."""
    source = f"~snapshot-{plan.snapshot.stamp}" if plan.snapshot else ""
    return package_store(out_root) / f"{plan.distribution}~{plan.release}{source}"


def package_store(out_root: Path) -> Path:
    """Where every release's package cache lives."""
    return out_root / ".cache" / "packages"


def package_cache_dirs(out_root: Path) -> list[Path]:
    """Every release's package cache under out_root."""
    root = package_store(out_root)
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def run_mkosi(runner: Runner, staging: Path, package_cache: Path, files: dict[str, RenderedFile],
              kernel: Optional[KernelArtifact], extra_trees: tuple[str, ...] | list[str] = (), offline: bool = False,
              layer: Optional[Path] = None) -> Path:
    """Write the project under staging/, build it, and move what we keep into staging/result/.
    offline: packages and their metadata from the package cache only (mkosi's CacheOnly=always).
    layer: mkosi's incremental cache directory (build/layers.py): the installed packages are taken from it
    when it holds them for these inputs, and saved into it when it does not."""
    project, images, result = staging / "project", staging / "images", staging / "result"
    if not runner.dry_run:
        write_tree(files, project)
        add_extra_trees(project, list(extra_trees), files)
        images.mkdir()
        package_cache.mkdir(parents=True, exist_ok=True)
    extra = ["--extra-tree", str(kernel.tree)] if kernel else []   # the kernel pmem-image built
    if (tools := tools_dir()) is not None:
        extra += ["--extra-search-path", str(tools)]   # mkosi runs the prefix's tools before the host's
    if layer is not None:
        extra += ["--incremental=yes", "--cache-dir", str(layer)]
        if not runner.dry_run:
            layer.mkdir(parents=True, exist_ok=True)
    # mkosi's workspace (the image tree while it is built) inside staging/: a killed build leaves nothing in
    # /var/tmp, since the next build removes the staging directory whole.
    extra += ["--workspace-dir", str(staging)]
    runner.run([mkosi_executable(), "-C", str(project), "--output-dir", str(images), "--package-cache-dir", str(package_cache),
                *extra, *(["--cache-only=always"] if offline else []), "--force", "build"],
               log=result / "build.log", show=_show_mkosi_step)
    if runner.dry_run:
        return result
    for produced in images.iterdir():
        if produced.is_file() and not produced.is_symlink() and \
                (produced.name.endswith(KEPT_SUFFIXES) or produced.name.startswith("kernel-config-")
                 or produced.name in CONTENT_LISTINGS):
            os.rename(produced, result / produced.name)
    return result


def release_order(release: str) -> tuple:
    """Kernel releases in version order, numbers as numbers: 6.1.0-10-amd64 comes after 6.1.0-9-amd64."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-+~_]", release))


def check_image_kernel(plan: Plan, result: Path, kernel: Optional[KernelArtifact]) -> str:
    """The image's kernel has every required option (=y or =m for the distro's); returns its release."""
    if not plan.kernel_options:
        raise PmemImageError("the plan requires no kernel options, so the image's kernel cannot be checked",
                             "the kernel fragments are missing from this installation; reinstall pmem-image")
    configs = sorted(result.glob("kernel-config-*"), key=lambda c: release_order(c.name.removeprefix("kernel-config-")))
    if not configs:
        raise PmemImageError("the image has no kernel config (/usr/lib/modules/*/config or /boot/config-*) to "
                             "check its kernel against the pmem fragments", f"see {result / 'build.log'}")
    if kernel is not None:
        configs = [c for c in configs if c.name == f"kernel-config-{kernel.release}"] or configs
    problems = []
    for config in configs:
        lost = lost_options(plan.kernel_options, parse_dotconfig(config.read_text()), modules_ok=True)
        problems += [f"  {config.name.removeprefix('kernel-config-')}: {l.format()}" for l in lost]
    if problems:
        raise PmemImageError("the image's kernel lacks options pmem emulation needs:\n" + "\n".join(problems),
                             "use a distribution release whose kernel has them, or build one: "
                             "kernel.source debian-source|tarball|tree")
    release = configs[-1].name.removeprefix("kernel-config-")
    for config in result.glob("kernel-config-*"):
        config.rename(result / "kernel.config") if config == configs[-1] else config.unlink()
    return release
