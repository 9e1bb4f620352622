#!/usr/bin/env python3
"""Boot-to-proof timings of one built image, as a table of medians (run as root, by hand; minutes).

  firmware   pmem-image verify: SeaBIOS or OVMF, GRUB, the disk's boot entry (the proof of what is published)
  fast       pmem-image verify --fast: QEMU loads the entry's kernel and initrds itself (-kernel/-initrd/-append)
  test       pmem-image test IMAGE -- true: the same direct boot, no proof, the command once pmem-ready.target is
             reached (report s: QEMU start to the command's start, from --json's boot_seconds)

Each is QEMU start to the guest's report (report.json's boot_seconds), plus the whole command (QEMU stopped,
overlay removed); the runs alternate, so both see the same machine. The ratio is fast / firmware, medians.

Usage: .venv/bin/python bench/boot.py [PROFILE] [RUNS]    (default profiles/default.yaml, 3 runs)
Uses out/bench/ as its output root (built first if needed). Never run it beside another build or boot.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / ".venv" / "bin" / "pmem-image")
OUT = ROOT / "out" / "bench"


def proof(profile: Path, env: dict, *options: str) -> tuple[float, float]:
    started = time.monotonic()
    result = subprocess.run([CLI, "verify", "--json", *options, str(profile)], env=env, capture_output=True, text=True)
    report = json.loads(result.stdout)
    if not report.get("passed"):
        sys.exit(f"verify {' '.join(options)} failed: {result.stdout[-2000:]}")
    return report["boot_seconds"], time.monotonic() - started


def test_true(profile: Path, env: dict) -> tuple[float, float]:
    started = time.monotonic()
    result = subprocess.run([CLI, "test", "--json", str(profile), "--", "true"], env=env, capture_output=True,
                            text=True, cwd=OUT)
    if result.returncode != 0:
        sys.exit(f"test -- true failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])["boot_seconds"], time.monotonic() - started


def main() -> None:
    # Absolute: `test` runs from OUT (so that its default share, the working directory, is not the checkout).
    profile = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "profiles" / "default.yaml").resolve()
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    env = {**os.environ, "PMEM_IMAGE_OUT": str(OUT)}
    subprocess.run([CLI, "build", str(profile)], env=env, check=True, capture_output=True)
    rows: dict[str, list[tuple[float, float]]] = {"firmware": [], "fast": [], "test": []}
    for _ in range(runs):
        rows["firmware"].append(proof(profile, env))
        rows["fast"].append(proof(profile, env, "--fast"))
        rows["test"].append(test_true(profile, env))
    print(f"{profile.stem}: {runs} run(s) each, 2 cores, TCG unless KVM works")
    print(f"{'boot':<10} {'report s':>9} {'min':>6} {'max':>6} {'command s':>10}")
    for name, values in rows.items():
        report = [v[0] for v in values]
        print(f"{name:<10} {statistics.median(report):>9.1f} {min(report):>6.1f} {max(report):>6.1f} "
              f"{statistics.median(v[1] for v in values):>10.1f}")
    ratio = statistics.median(v[0] for v in rows["fast"]) / statistics.median(v[0] for v in rows["firmware"])
    print(f"\nfast / firmware (report): {ratio:.2f}x")


if __name__ == "__main__":
    main()
