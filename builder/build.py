"""pmem-image build: plan + rendered tree -> mkosi -> out/<name>/, content-addressed and atomic.

The build key hashes the canonical plan, every rendered file (templates and the flush test's
source included) and the mkosi version: an unchanged profile with its output present is a no-op.
Everything is built in a staging directory under out/ and swapped into out/<name>/ at the end,
so a failed, interrupted or killed build leaves the previous output as it was.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import PmemImageError
from .hashing import sha256_file, sha256_of_tree
from .kconfig import lost_options, parse_dotconfig
from .kernel_build import KernelArtifact, debian_source_path, prepare_kernel
from .plan import Plan
from .render import RenderedFile
from .runner import Runner
from .tree import replace_dir, write_tree

MANIFEST = "manifest.json"
KEPT_SUFFIXES = (".raw", ".vmlinuz", ".initrd", ".manifest")


class BuildLocked(PmemImageError):
    pass


@dataclass(frozen=True)
class BuildResult:
    directory: Path
    key: str
    rebuilt: bool
    manifest: dict


def build_key(plan: Plan, files: dict[str, RenderedFile], mkosi_version: str, kernel_identity: str = "") -> str:
    digest = hashlib.sha256()
    for part in (plan.canonical_json(), __version__, mkosi_version, kernel_identity):
        digest.update(part.encode() + b"\0")
    for path, rendered in sorted(files.items()):
        digest.update(f"{path}\0{int(rendered.executable)}\0{rendered.content}\0".encode())
    return digest.hexdigest()


def kernel_release_from_bzimage(path: Path) -> str:
    """The kernel release string a bzImage carries (setup header field kernel_version)."""
    with open(path, "rb") as stream:
        header = stream.read(0x210)
        if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
            return ""
        (offset,) = struct.unpack_from("<H", header, 0x20E)
        stream.seek(offset + 0x200)
        return stream.read(256).split(b"\0")[0].decode(errors="replace").split(" ")[0]


def up_to_date(directory: Path, key: str) -> dict | None:
    """The manifest of an existing output built with `key` whose images are all still there."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("build_key") != key:
        return None
    for image in manifest.get("files", []):
        path = directory / image["name"]
        if not path.is_file() or path.stat().st_size != image["size"]:
            return None
    return manifest


class BuildLock:
    """An flock on out/.locks/<name>.lock: a second build of the same profile refuses at once."""

    def __init__(self, out_root: Path, name: str):
        self.path = out_root / ".locks" / f"{name}.lock"

    def __enter__(self) -> "BuildLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise BuildLocked(f"another build of this profile is running ({holder})",
                              "wait for it to finish, then run the build again (it will be a no-op if it succeeded)")
        self.handle.truncate(0)
        self.handle.write(f"pid {os.getpid()}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _remove_stale_staging(out_root: Path, name: str) -> None:
    """Staging dirs of this profile left by a killed build (we hold its lock, so none is live).
    The suffix is mkdtemp's (no '-'), so profile 'a' never touches the staging of profile 'a-b'."""
    own = re.compile(rf"^\.staging-{re.escape(name)}-[a-z0-9_]+$")
    for stale in out_root.glob(f".staging-{name}-*"):
        if own.match(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def _keep_failure_logs(result: Path, destination: Path, hint: str) -> str:
    """Logs of a failed build go to out/<name>.failed/ (out/<name>/ keeps the last good build)."""
    logs = sorted(result.glob("*.log"))
    if not logs:
        return hint
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    for log in logs:
        shutil.copyfile(log, destination / log.name)
    return re.sub(r"full log: \S+", f"full log: {destination / logs[0].name}", hint) if "full log:" in hint \
        else (hint + "; " if hint else "") + f"logs in {destination}"


def _show_mkosi_step(line: str) -> bool:
    return line.startswith("‣")


def kernel_source_identity(plan: Plan) -> str:
    """What the build key knows of a kernel source without reading all of it."""
    if plan.kernel_source == "debian-source":
        _, tarball = debian_source_path(plan)
        stat = tarball.stat() if tarball.exists() else None
        return f"{tarball}:{stat.st_size}:{stat.st_mtime_ns}" if stat else "missing"
    if plan.kernel_source == "tree" and plan.kernel_path and Path(plan.kernel_path).is_dir():
        return sha256_of_tree(Path(plan.kernel_path))
    return plan.kernel_sha256 or ""


def build(plan: Plan, files: dict[str, RenderedFile], out_root: Path, runner: Runner, *,
          mkosi_version: str, force: bool = False, profile_sha256: str = "") -> BuildResult:
    out_root = out_root.absolute()
    directory = out_root / plan.name
    key = build_key(plan, files, mkosi_version, kernel_source_identity(plan))
    if not force and (manifest := up_to_date(directory, key)):
        runner.say(f"{plan.name}: up to date (build key {key[:16]}), nothing to do")
        return BuildResult(directory, key, False, manifest)
    if runner.dry_run:
        staging = out_root / f".staging-{plan.name}-DRYRUN"
        prepare_kernel(plan, out_root, runner, staging / "result")
        _run_mkosi(runner, staging, out_root, plan, files, None)
        return BuildResult(directory, key, False, {})
    out_root.mkdir(parents=True, exist_ok=True)
    with BuildLock(out_root, plan.name):
        _remove_stale_staging(out_root, plan.name)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{plan.name}-", dir=out_root))
        try:
            started = time.time()
            (staging / "result").mkdir()
            kernel = prepare_kernel(plan, out_root, runner, staging / "result")
            result_dir = _run_mkosi(runner, staging, out_root, plan, files, kernel)
            kernel_release = check_image_kernel(plan, result_dir, kernel)
            manifest = _write_results(result_dir, plan, key, mkosi_version, profile_sha256,
                                      time.time() - started, kernel, kernel_release)
            replace_dir(result_dir, directory)
        except PmemImageError as error:
            error.hint = _keep_failure_logs(staging / "result", out_root / f"{plan.name}.failed", error.hint)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    runner.say(f"{plan.name}: built {directory} in {manifest['build_seconds']:.0f}s")
    return BuildResult(directory, key, True, manifest)


def _run_mkosi(runner: Runner, staging: Path, out_root: Path, plan: Plan, files: dict[str, RenderedFile],
               kernel: KernelArtifact | None) -> Path:
    project, images, result = staging / "project", staging / "images", staging / "result"
    if not runner.dry_run:
        write_tree(files, project)
        images.mkdir()
    package_cache = out_root / ".cache" / "packages"   # shared: a second profile reuses downloads
    if not runner.dry_run:
        package_cache.mkdir(parents=True, exist_ok=True)
    extra = ["--extra-tree", str(kernel.tree)] if kernel else []   # the kernel pmem-image built
    runner.run(["mkosi", "-C", str(project), "--output-dir", str(images), "--package-cache-dir", str(package_cache),
                *extra, "--force", "build"], log=result / "build.log", show=_show_mkosi_step)
    if runner.dry_run:
        return result
    for produced in images.iterdir():
        if produced.is_file() and not produced.is_symlink() and \
                (produced.name.endswith(KEPT_SUFFIXES) or produced.name.startswith("kernel-config-")):
            os.rename(produced, result / produced.name)
    return result


def check_image_kernel(plan: Plan, result: Path, kernel: KernelArtifact | None) -> str:
    """The image's kernel has every required option (=y or =m for the distro's); returns its release."""
    configs = sorted(result.glob("kernel-config-*"))
    if not configs:
        raise PmemImageError("the image has no /boot/config-* to check its kernel against the pmem fragments",
                             f"see {result / 'build.log'}")
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


def _write_results(result: Path, plan: Plan, key: str, mkosi_version: str, profile_sha256: str,
                   seconds: float, kernel: KernelArtifact | None, config_release: str) -> dict:
    images = sorted(p for p in result.iterdir() if p.name.endswith(KEPT_SUFFIXES) or p.name == "kernel.config")
    raw = result / f"{plan.name}.raw"
    if not raw.exists():
        raise PmemImageError(f"mkosi finished but produced no {raw.name}", f"see {result / 'build.log'}")
    entries = [{"name": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)} for p in images]
    (result / "SHA256SUMS").write_text("".join(f"{e['sha256']}  {e['name']}\n" for e in entries))
    vmlinuz = result / f"{plan.name}.vmlinuz"
    manifest = {
        "name": plan.name,
        "profile_sha256": profile_sha256,
        "plan_hash": plan.digest(),
        "build_key": key,
        "pmem_image_version": __version__,
        "mkosi_version": mkosi_version,
        "distribution": plan.distribution,
        "release": plan.release,
        "kernel_release": kernel_release_from_bzimage(vmlinuz) if vmlinuz.exists() else config_release,
        "kernel_source": plan.kernel_source,
        "kernel_version": plan.kernel_version,
        "kernel_build_key": kernel.key if kernel else None,
        "kernel_built_now": kernel.built if kernel else None,
        "kernel_fragments": plan.kernel_fragments,
        "kernel_cmdline": plan.kernel_cmdline,
        "memmap": [f"memmap={r.memmap}" for r in plan.regions],
        "image": raw.name,
        "files": entries,
        "build_seconds": round(seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (result / "plan.json").write_text(json.dumps(plan.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    (result / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
