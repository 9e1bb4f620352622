#!/usr/bin/env python3
"""The flush test's methods side by side on this host (DRAM, page cache: MAP_SYNC refused).

Run by hand: .venv/bin/python bench/flush.py [DIR] [SIZE] [RUNS]
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.build.flushtest import compile_flush_test  # noqa: E402


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    size = sys.argv[2] if len(sys.argv) > 2 else "64M"
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    with tempfile.TemporaryDirectory() as tmp:
        binary = compile_flush_test(Path(tmp) / "pmem-flush-test")
        results: dict[str, list[dict]] = {}
        for _ in range(runs):
            out = subprocess.run([str(binary), "--json", "--method", "all", "--size", size, directory],
                                 capture_output=True, text=True, check=True).stdout
            report = json.loads(out)
            for row in report["results"]:
                results.setdefault(row["method"], []).append(row)
    print(f"host flush test: {directory}, {size}, median of {runs} runs (each the best of 3 rounds); "
          f"MAP_SYNC {'accepted' if report['map_sync'] else 'refused'}")
    print(f"{'method':<11} {'GB/s':>8} {'ns/line':>9}  verified")
    for method, rows in results.items():
        print(f"{method:<11} {statistics.median(r['gbps'] for r in rows):>8.2f} "
              f"{statistics.median(r['ns_per_line'] for r in rows):>9.2f}  "
              f"{'ceiling' if rows[0]['verified'] is None else all(r['verified'] for r in rows)}")


if __name__ == "__main__":
    main()
