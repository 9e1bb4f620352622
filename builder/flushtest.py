"""The native pmem flush test: its compiler flags (shared with the image build) and a host build."""

import hashlib
import subprocess
import sys
from pathlib import Path

from .errors import PmemImageError
from .render import FLUSH_TEST_CFLAGS as CFLAGS, flush_test_source

SANITIZE_FLAGS = ["-std=c11", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror"]


def compile_flush_test(destination: Path, sanitize: bool = False, compiler: str = "gcc") -> Path:
    """Compile the flush test for this host into `destination` (a file path)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = destination.with_suffix(".c")
    source.write_text(flush_test_source())
    argv = [compiler, *(SANITIZE_FLAGS if sanitize else CFLAGS), "-o", str(destination), str(source)]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise PmemImageError(f"compiling the flush test failed:\n{result.stderr}", f"command: {' '.join(argv)}")
    return destination


def host_binary(cache: Path) -> Path:
    """A host build of the current source, cached by the source's hash."""
    digest = hashlib.sha256(flush_test_source().encode() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    binary = cache / f"pmem-flush-test-{digest}"
    return binary if binary.exists() else compile_flush_test(binary)


def run_on_host(arguments: list[str], cache: Path) -> int:
    binary = host_binary(cache)
    sys.stdout.flush()
    return subprocess.run([str(binary), *arguments]).returncode
