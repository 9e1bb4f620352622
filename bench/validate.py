#!/usr/bin/env python3
"""`pmem-image validate` of many profile files in one call, as a user runs it (one process, the real CLI):
1,000 valid files, then the same with every tenth file broken (errors grouped per file). Target: <= 2 s.

Run by hand: .venv/bin/python bench/validate.py [COUNT]
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / ".venv" / "bin" / "pmem-image"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    template = (ROOT / "profiles" / "default.yaml").read_text()
    print(f"{'case':<26} {'files':>6} {'seconds':>8} {'exit':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for case, broken_every in (("all valid", 0), ("every tenth broken", 10)):
            paths = []
            for i in range(count):
                path = Path(tmp) / case.replace(" ", "-") / f"p{i:04d}.yaml"
                path.parent.mkdir(exist_ok=True)
                text = template.replace("name: default", f"name: p{i}")
                if broken_every and i % broken_every == 0:
                    text = text.replace("size: 1G", "size: 100M")      # not a multiple of 128M
                path.write_text(text)
                paths.append(str(path))
            started = time.perf_counter()
            result = subprocess.run([str(CLI), "validate", *paths], capture_output=True, text=True)
            seconds = time.perf_counter() - started
            print(f"{case:<26} {count:>6} {seconds:>8.2f} {result.returncode:>5}")


if __name__ == "__main__":
    main()
