#!/usr/bin/env python3
"""Validate + plan + render 100 generated profiles; print the time per stage as a table.

Run by hand: .venv/bin/python bench/render.py [COUNT]
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.knowledge.host import AptMirror  # noqa: E402
from builder.profile.loader import profile_from_text  # noqa: E402
from builder.plan.planner import make_plan  # noqa: E402
from builder.render.outputs import render  # noqa: E402

MIRROR = AptMirror(archive="http://deb.debian.org/debian")


def profile_text(i: int) -> str:
    regions = "".join(f"  - {{size: 512M, offset: {4096 + 512 * r}M, filesystem: {('ext4', 'xfs')[r % 2]}}}\n"
                      for r in range(1 + i % 4))
    return (f"name: bench-{i}\ndistribution: {{name: debian, release: {('bookworm', 'trixie')[i % 2]}}}\n"
            f"vm: {{memory: 8G, firmware: {('bios', 'uefi')[i % 2]}}}\nkernel: {{cmdline: [loglevel={i % 8}]}}\n"
            f"pmem:\n{regions}")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    texts = [profile_text(i) for i in range(count)]
    timings: dict[str, list[float]] = {"load+validate": [], "checks+plan": [], "render": []}
    started = time.perf_counter()
    for i, text in enumerate(texts):
        t0 = time.perf_counter()
        profile, source = profile_from_text(text, f"bench-{i}.yaml")
        t1 = time.perf_counter()
        plan, _ = make_plan(profile, f"bench-{i}.yaml", source, MIRROR)
        t2 = time.perf_counter()
        render(plan)
        t3 = time.perf_counter()
        for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            timings[key].append(value * 1000)
    total = time.perf_counter() - started
    print(f"{'stage':<15} {'median ms':>10} {'p90 ms':>8} {'max ms':>8}")
    for key, values in timings.items():
        values.sort()
        print(f"{key:<15} {statistics.median(values):>10.2f} {values[int(len(values) * 0.9) - 1]:>8.2f} "
              f"{values[-1]:>8.2f}")
    print(f"\n{count} profiles validated, planned and rendered in {total:.2f}s ({total / count * 1000:.1f} ms each)")


if __name__ == "__main__":
    main()
