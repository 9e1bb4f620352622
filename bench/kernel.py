#!/usr/bin/env python3
"""Kernel build costs for a profile that builds its kernel (run as root, by hand; tens of minutes).

  config       options set (=y/=m) after the start config + fragments, for tinyconfig and defconfig
  cold build   pmem-image build --force with empty kernel and ccache caches (tinyconfig unless --defconfig)
  cached       pmem-image build --force again: the kernel comes from out/.cache/kernels, no compile

Usage: .venv/bin/python bench/kernel.py [PROFILE] [--defconfig]
Uses out/bench-kernel/ as its output root. Never run it beside another build (2 cores).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.cli.main import load_plan  # noqa: E402
from builder.knowledge.kconfig import parse_dotconfig  # noqa: E402
from builder.build.kernel import configure, obtain_source  # noqa: E402
from builder.runner import Runner  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench-kernel"


def timed(argv: list[str], env: dict) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    profile = Path(args[0] if args else ROOT / "profiles" / "debian-source-6.1.yaml")
    plan, _ = load_plan(profile)
    quiet = Runner(out=open(os.devnull, "w"))
    source, _ = obtain_source(plan, OUT / ".cache", quiet)
    print(f"{'start config':<14} {'options y/m':>12} {'.config lines':>14}")
    for base in ("tinyconfig", "defconfig"):
        with tempfile.TemporaryDirectory() as tmp:
            config = configure(plan.model_copy(update={"kernel_base": base}), source, Path(tmp), quiet,
                               Path(tmp) / "log")
            values = parse_dotconfig(config)
            print(f"{base:<14} {sum(v in ('y', 'm') for v in values.values()):>12} {len(config.splitlines()):>14}")
    if "--defconfig" in sys.argv:
        profile_text = profile.read_text().replace("base: tinyconfig", "base: defconfig")
        profile = OUT / "defconfig.yaml"
        profile.write_text(profile_text)
    env = {**os.environ, "PMEM_IMAGE_OUT": str(OUT)}
    for cache in ("kernels", "ccache", "kernel-build"):
        shutil.rmtree(OUT / ".cache" / cache, ignore_errors=True)
    cli = str(ROOT / ".venv" / "bin" / "pmem-image")
    cold = timed([cli, "build", "--force", str(profile)], env)
    cached = timed([cli, "build", "--force", str(profile)], env)
    print(f"\n{'build':<34} {'seconds':>8}")
    print(f"{'cold (kernel compiled, image)':<34} {cold:>8.0f}")
    print(f"{'cached kernel (image only)':<34} {cached:>8.0f}")
    print(f"{'kernel share of the cold build':<34} {cold - cached:>8.0f}")


if __name__ == "__main__":
    main()
