"""pmem-image build: plan + rendered tree -> mkosi -> out/<name>/, content-addressed and atomic.

The build key hashes the plan's identity, every rendered file that does not depend on the build host
(templates and the flush test's source included), the mkosi version, the version of every other tool
that writes bytes and pmem-image's own byte-writing code (toolchain.py), and the kernel's inputs: an
unchanged profile with its output present is a no-op, on this machine or another. Everything is built
in a staging directory under out/ and swapped into out/<name>/ at the end, so a failed, interrupted or
killed build leaves the previous output as it was.
"""

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .. import __version__
from ..plan.model import Plan
from ..profile.errors import PmemImageError
from ..render.outputs import RenderedFile
from ..runner import Runner, check_cancelled, fault_point
from .locks import BuildLock, CacheLock, MachineBuildLock
from .hashing import sha256_file_memo, sha256_of_content, sha256_of_tree
from .exports import export_all
from .kernel import prepare_kernel
from .kernel_sources import debian_source_path, debian_source_tarball
from .manifest import file_stamp, read_manifest, write_local_files, write_results
from . import binary_cache
from .contents import clamp_fat_label, partition_table, write_contents
from .layers import borrow_initrd, drop_layer, initrd_dir, initrd_key, layer_dir, layer_is_built, layer_key, lend_initrd
from .lock import check_against_lock, write_initrd_packages
from .mkosi import check_image_kernel, package_cache_dir, run_mkosi, tools_dir
from .toolchain import toolchain_identity
from .instance_state import rescue_legacy_state
from .tree import remove_leftovers, replace_dir


@dataclass(frozen=True)
class BuildResult:
    directory: Path
    key: str
    rebuilt: bool
    manifest: dict
    pulled: bool = False     # substituted from a binary cache instead of built


def build_key(plan: Plan, files: dict[str, RenderedFile], mkosi_version: str, kernel_identity: str = "",
              tools: str = "") -> str:
    """tools: toolchain_identity(), the tool versions and byte-writing code (empty in unit tests)."""
    digest = hashlib.sha256()
    for part in (plan.canonical_json(), __version__, mkosi_version, kernel_identity, tools):
        digest.update(part.encode() + b"\0")
    for path, rendered in sorted(files.items()):
        if not rendered.host_specific:
            digest.update(f"{path}\0{int(rendered.executable)}\0{rendered.content}\0".encode())
    return digest.hexdigest()


def up_to_date(directory: Path, key: str) -> dict | None:
    """The manifest of an existing output built with `key` whose images are all still there."""
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("build_key") != key:
        return None
    for image in manifest.get("files", []):
        path = directory / image["name"]
        stamp = file_stamp(path) if path.is_file() else None
        if stamp is None or any(image.get(key) != value for key, value in stamp.items()):
            return None
    return manifest


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


def input_identity(plan: Plan, out_root: Path, runner: Runner) -> str:
    """What the build reads besides the plan and the rendered files: the kernel source and the extra trees,
    each by content."""
    trees = [sha256_of_content(Path(path)) if Path(path).is_dir() else "missing" for path in plan.extra_tree_paths]
    return "\0".join([kernel_source_identity(plan, out_root, runner), *trees])


def kernel_source_identity(plan: Plan, out_root: Path, runner: Runner) -> str:
    """The kernel source's content identity (never its path), as far as the build key needs it."""
    if plan.kernel_source == "debian-source":
        _, tarball = debian_source_path(plan)
        if not tarball.exists() and not runner.dry_run:
            # Installed before the key is made, not during the build (review L10): keyed on "missing", the
            # first build would not be a no-op the next time.
            debian_source_tarball(plan, runner)
        return sha256_file_memo(tarball, out_root / ".cache" / "source-hashes.json") if tarball.exists() \
            else "missing"
    if plan.kernel_source == "tree" and plan.kernel_path and Path(plan.kernel_path).is_dir():
        return sha256_of_tree(Path(plan.kernel_path))
    return plan.kernel_sha256 or ""


def _package_layer(plan: Plan, files: dict[str, RenderedFile], mkosi_version: str, out_root: Path, cold: bool,
                   runner: Runner) -> tuple[Path, bool, Path]:
    """The package layer's directory, whether it already holds the installed packages, and the store of the
    default initrd's tree for these inputs (a new layer has borrowed it from there, unless cold)."""
    layer = layer_dir(out_root, layer_key(plan, files, mkosi_version))
    if cold:
        drop_layer(layer)
    reused = layer_is_built(layer)
    runner.say(f"package layer {layer.name[:16]}: " + ("reused (no package installation)" if reused
                                                        else "installing packages into it"))
    initrds = initrd_dir(out_root, initrd_key(plan, files, mkosi_version))
    if not reused and not cold:
        borrow_initrd(layer, initrds, runner)
    return layer, reused, initrds


def _substituted(repository: str, key: str, destination: Path, runner: Runner,
                 trusted_keys: Optional[Path]) -> Optional[dict]:
    runner.say(f"looking for build key {key[:16]} in {repository}")
    manifest = binary_cache.pull(repository, key, destination, trusted_keys, runner)
    if manifest is None:
        runner.say(f"{repository} has no build {key[:16]}; building it here")
    elif trusted_keys is None:
        runner.say("warning: no --trusted-keys: the digests show the files arrived as the registry sent them, "
                   "not who built them")
    else:
        runner.say(f"signed by {manifest['signed_by']} (a key in {trusted_keys})")
    return manifest


def kernel_lock_entry(plan: Plan) -> str:
    """The kernel cache entry a plan works on (its source and base config), '' for the distribution's kernel,
    which needs no kernel cache at all."""
    if plan.kernel_source == "distro":
        return ""
    what = [plan.kernel_source, plan.kernel_version, plan.kernel_url or "", plan.kernel_path or "",
            plan.kernel_sha256 or "", plan.kernel_base]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _cache_locks(out_root: Path, cache: str, entry: str, say) -> Iterator[None]:
    """The cache held shared (gc waits) and the entry exclusively; nothing at all without an entry."""
    if not entry:
        yield
        return
    with CacheLock(out_root, cache, say, shared=True), CacheLock(out_root, cache, say, entry=entry):
        yield


def build(plan: Plan, files: dict[str, RenderedFile], out_root: Path, runner: Runner, *,
          mkosi_version: str, force: bool = False, profile_sha256: str = "",
          substitute: Optional[str] = None, offline: bool = False, cold: bool = False,
          trusted_keys: Optional[Path] = None, machine_lock: Optional[Path] = None) -> BuildResult:
    """substitute: REGISTRY/REPO of a binary cache; a build whose key is tagged there is pulled, not built.
    offline: install from the package cache only, no network (a locked build whose packages it holds).
    cold: install the packages afresh (drop the package layer of these inputs first).
    trusted_keys: an OpenSSH allowed_signers file; a substituted build must be signed by one of them.
    machine_lock: a file held exclusively from staging to the finished output (MachineBuildLock)."""
    out_root = out_root.absolute()
    directory = out_root / plan.name
    key = build_key(plan, files, mkosi_version, input_identity(plan, out_root, runner),
                    toolchain_identity(tools_dir()))
    if runner.dry_run:
        if not force and (manifest := up_to_date(directory, key)):
            runner.say(f"{plan.name}: up to date (build key {key[:16]}), nothing to do")
            return BuildResult(directory, key, False, manifest)
        staging = out_root / f".staging-{plan.name}-DRYRUN"
        prepare_kernel(plan, out_root, runner, staging / "result")
        run_mkosi(runner, staging, package_cache_dir(out_root, plan), files, None, plan.extra_tree_paths,
                  layer=layer_dir(out_root, layer_key(plan, files, mkosi_version)))
        return BuildResult(directory, key, False, {})
    out_root.mkdir(parents=True, exist_ok=True)
    with BuildLock(out_root, plan.name):
        # Under the lock no build of this profile is live, so what a killed one left can go, no-op or not.
        _remove_stale_staging(out_root, plan.name)
        remove_leftovers(out_root, plan.name)
        if not force and (manifest := up_to_date(directory, key)):
            runner.say(f"{plan.name}: up to date (build key {key[:16]}), nothing to do")
            return BuildResult(directory, key, False, manifest)
        # Waiting for the machine's build lock comes before the staging directory: a build that waits leaves
        # nothing in out/ yet.
        with MachineBuildLock(machine_lock, runner.say, plan.name) if machine_lock else contextlib.nullcontext():
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{plan.name}-", dir=out_root))
            try:
                fault_point("staging")      # the fault-injection suite's cuts, one per phase boundary
                started = time.time()
                pulled = staging / "pulled"
                if substitute and (manifest := _substituted(substitute, key, pulled, runner, trusted_keys)):
                    write_local_files(pulled, plan, directory, manifest)
                    rescue_legacy_state(directory, out_root, plan.name, runner.say)
                    check_cancelled()       # interrupted (another --jobs worker's Ctrl-C): replace nothing
                    replace_dir(pulled, directory)
                    runner.say(f"{plan.name}: pulled {manifest['pulled_from']} in {time.time() - started:.0f}s")
                    return BuildResult(directory, key, False, manifest, pulled=True)
                (staging / "result").mkdir()
                # Shared caches: a build of another profile that needs the same entry (kernel source and base,
                # release package cache) waits rather than corrupting it; one with other entries goes on (M10).
                with _cache_locks(out_root, "kernels", kernel_lock_entry(plan), runner.say):
                    kernel = prepare_kernel(plan, out_root, runner, staging / "result")
                fault_point("kernel")
                package_cache = package_cache_dir(out_root, plan)
                with _cache_locks(out_root, "packages", package_cache.name, runner.say):
                    layer, reused, initrds = _package_layer(plan, files, mkosi_version, out_root, cold, runner)
                    fault_point("layer")
                    result_dir = run_mkosi(runner, staging, package_cache, files, kernel, plan.extra_tree_paths,
                                           offline, layer)
                    fault_point("mkosi")
                    lend_initrd(layer, initrds, runner, replace=cold)
                    if plan.apt_suites:     # apt distributions: what the lock pins (rpm ones have no lock)
                        write_initrd_packages(layer, result_dir, runner)
                    if plan.locked_packages:
                        check_against_lock(plan, result_dir, package_cache)
                kernel_release = check_image_kernel(plan, result_dir, kernel)
                raw = result_dir / f"{plan.name}.raw"
                table = partition_table(raw, runner)
                # The one field of the disk that does not follow the seed or SOURCE_DATE_EPOCH by itself.
                clamp_fat_label(raw, table, plan.source_date_epoch)
                write_contents(result_dir, raw, table, runner)
                fault_point("finalize")
                artifacts = export_all(plan, raw, result_dir, runner)
                fault_point("exports")
                manifest = write_results(result_dir, plan, key, mkosi_version, profile_sha256,
                                         time.time() - started, kernel, kernel_release, directory, artifacts,
                                         {"name": layer.name, "reused": reused})
                fault_point("results")
                rescue_legacy_state(directory, out_root, plan.name, runner.say)
                check_cancelled()
                replace_dir(result_dir, directory)
            except PmemImageError as error:
                error.hint = _keep_failure_logs(staging / "result", out_root / f"{plan.name}.failed", error.hint)
                raise
            except OSError as error:
                if error.filename is None:       # a write to an open file (ENOSPC): say where the build was
                    error.filename = str(staging)
                raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    runner.say(f"{plan.name}: built {directory} in {manifest['build_seconds']:.0f}s")
    return BuildResult(directory, key, True, manifest)
