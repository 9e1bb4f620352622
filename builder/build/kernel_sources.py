"""Kernel sources for kernels built from source: a Debian linux-source tarball, a tarball by URL or path
(checked against its sha256 before anything is unpacked), or a local tree; unpacked once into the cache."""

import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

from ..knowledge.kernels import format_version, parse_version
from ..plan.model import Plan
from ..profile.errors import PmemImageError
from ..runner import Runner
from .hashing import sha256_file, sha256_of_tree
from .kernel_sandbox import KbuildSandbox


class KernelError(PmemImageError):
    pass


def makefile_version(source: Path) -> tuple[int, int, int]:
    try:
        text = (source / "Makefile").read_text(errors="replace")[:2000]
    except OSError:
        raise KernelError(f"{source} has no Makefile",
                          "point kernel.path (or the tarball) at a kernel source tree") from None
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
        raise KernelError(f"cannot download {url}: {error}", "check kernel.url and the network") from error
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


# tar cannot tell an archive's compression on a pipe: the first bytes do.
_MAGIC = ((b"\x1f\x8b", "-z"), (b"\xfd7zXZ\x00", "-J"), (b"BZh", "-j"), (b"\x28\xb5\x2f\xfd", "--zstd"))


def _compression(tarball: Path) -> list[str]:
    with open(tarball, "rb") as stream:
        head = stream.read(8)
    return next(([flag] for magic, flag in _MAGIC if head.startswith(magic)), [])


def unpack(tarball: Path, sha256: str, cache: Path, runner: Runner) -> Path:
    """Unpack once into the cache; returns the source tree (the tarball's single top directory)."""
    target = cache / "kernel-src" / sha256[:32]
    if not (target / ".unpacked").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            # tar runs in the kernel sandbox: a hostile archive's links and names can only write in staging/.
            # Owners and modes from the tarball are not ours to keep.
            # root opens the archive and hands it over on stdin: the sandbox user need not reach its directory.
            sandbox = KbuildSandbox(staging, (staging,))
            sandbox.hand_over()
            runner.run(sandbox.argv(["tar", "-C", str(staging), "--no-same-owner", "--no-same-permissions",
                                     *_compression(tarball), "-xf", "-"], staging), stdin=tarball)
            sandbox.take_back(staging)
            entries = [p for p in staging.iterdir()]
            if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink():
                names = ", ".join(sorted(p.name for p in entries)[:5]) or "nothing"
                raise KernelError(f"{tarball} does not unpack to one top directory (found: {names})",
                                  "a kernel tarball holds a single linux-X.Y/ directory, as kernel.org's do")
            (staging / ".unpacked").write_text(f"{tarball}\n")
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    (top,) = [p for p in target.iterdir() if p.is_dir()]
    return top


def obtain_source(plan: Plan, cache: Path, runner: Runner) -> tuple[Path, str]:
    if plan.kernel_source == "tree":
        path = Path(plan.kernel_path or "")
        if not path.is_dir():
            raise KernelError(f"kernel tree {path} does not exist", "fix kernel.path (relative to the profile)")
        return path, sha256_of_tree(path)
    tarball = fetch_tarball(plan, cache, runner) if plan.kernel_source == "tarball" else \
        debian_source_tarball(plan, runner)
    sha256 = (plan.kernel_sha256 or "") if plan.kernel_source == "tarball" else sha256_file(tarball)
    return unpack(tarball, sha256, cache, runner), sha256
