#!/usr/bin/env python3
"""Build and boot timings for a profile, as a table of medians (run as root, by hand; minutes).

  cold         pmem-image build --cold with an empty package cache (downloads everything)
  warm         pmem-image build --cold with the package cache filled (installs every package again)
  incremental  pmem-image build --force: the package layer is reused (no package installation)
  pmem change  the profile with its first pmem region resized, built from the package layer
  no-op        pmem-image build of the unchanged profile (output present)
  raw          mkosi build on the same rendered tree, without pmem-image or its layer (overhead = warm / raw)
  proof        pmem-image verify: QEMU start to the guest's report

Usage: .venv/bin/python bench/build.py [PROFILE] [RUNS]    (default profiles/default.yaml, 3 runs)
Uses out/bench/ as its output root. Never run it beside another build (2 cores).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from builder.build.mkosi import mkosi_executable, tools_dir  # noqa: E402  (the bench runs from the checkout)

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / ".venv" / "bin" / "pmem-image")
OUT = ROOT / "out" / "bench"


def timed(argv: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.monotonic() - started


def resized(profile: Path, directory: Path) -> Path:
    """The profile with its first pmem region at another size (a multiple of 128M, as both backends want),
    under another name so that it has an output of its own."""
    data = yaml.safe_load(profile.read_text())
    data["name"] = f"{data['name']}-resized"
    data["pmem"][0]["size"] = "512M" if str(data["pmem"][0]["size"]) != "512M" else "768M"
    changed = directory / profile.name
    changed.write_text(yaml.safe_dump(data))
    return changed


def main() -> None:
    profile = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "profiles" / "default.yaml")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    env = {**os.environ, "PMEM_IMAGE_OUT": str(OUT)}
    identity = json.loads(subprocess.run([CLI, "plan", "--json", str(profile)], capture_output=True, text=True,
                                         check=True).stdout)["identity"]
    name = identity["name"]
    cache = OUT / ".cache" / "packages"
    release_cache = cache / f"{identity['distribution']}~{identity['release']}"   # the build's, for raw mkosi
    rows: dict[str, list[float]] = {"cold build": [], "warm build": [], "incremental build": [],
                                    "pmem-only change": [], "no-op build": [], "raw mkosi build": [],
                                    "boot to proof": []}
    for _ in range(runs):
        shutil.rmtree(cache, ignore_errors=True)
        rows["cold build"].append(timed([CLI, "build", "--cold", str(profile)], env=env))
        rows["warm build"].append(timed([CLI, "build", "--cold", str(profile)], env=env))
        rows["incremental build"].append(timed([CLI, "build", "--force", str(profile)], env=env))
        shutil.rmtree(OUT / f"{name}-resized", ignore_errors=True)     # a new output each run, not a no-op
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            rows["pmem-only change"].append(timed([CLI, "build", str(resized(profile, Path(tmp)))], env=env))
        rows["no-op build"].append(timed([CLI, "build", str(profile)], env=env))
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            tree, images = Path(tmp) / "tree", Path(tmp) / "images"
            subprocess.run([CLI, "render", str(profile), "-o", str(tree)], check=True, capture_output=True)
            images.mkdir()
            # The same mkosi and tools pmem-image runs (the private prefix): the host's own systemd-repart and
            # mke2fs are too old for mkosi 24.3 on the supported hosts (review L5).
            tools = tools_dir()
            prefix = ["--extra-search-path", str(tools)] if tools else []
            rows["raw mkosi build"].append(timed([mkosi_executable(), "-C", str(tree), "--output-dir", str(images),
                                                  "--package-cache-dir", str(release_cache), *prefix, "--force",
                                                  "build"]))
        result = subprocess.run([CLI, "verify", "--json", str(profile)], env=env, capture_output=True, text=True)
        rows["boot to proof"].append(json.loads(result.stdout)["boot_seconds"])
    print(f"{name}: {runs} run(s), 2 cores, {'KVM' if 'kvm' in result.stdout else 'TCG'}")
    print(f"{'step':<16} {'median s':>9} {'min s':>7} {'max s':>7}")
    for step, values in rows.items():
        print(f"{step:<16} {statistics.median(values):>9.2f} {min(values):>7.2f} {max(values):>7.2f}")
    warm, raw = statistics.median(rows["warm build"]), statistics.median(rows["raw mkosi build"])
    print(f"\noverhead of pmem-image over raw mkosi (warm): {warm / raw:.2f}x")


if __name__ == "__main__":
    main()
