"""The native pmem flush test built and run on this host (the image builds its own copy with mkosi)."""

import hashlib
import os
from pathlib import Path
from typing import Optional

from ..native import HOST_CFLAGS as CFLAGS, flush_test_source
from ..profile.errors import PmemImageError
from ..runner import Runner

SANITIZE_FLAGS = ["-std=c11", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror"]


def compile_flush_test(destination: Path, sanitize: bool = False, compiler: str = "gcc",
                       runner: Optional[Runner] = None) -> Path:
    """Compile the flush test for this host into `destination` (a file path)."""
    runner = runner or Runner()
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = destination.parent / f"{destination.name}.c"
    source.write_text(flush_test_source())
    argv = [compiler, *(SANITIZE_FLAGS if sanitize else CFLAGS), "-o", str(destination), str(source)]
    result = runner.query(argv)
    if result.returncode != 0:
        raise PmemImageError(f"compiling the flush test failed:\n{result.stderr}", f"command: {' '.join(argv)}")
    return destination


def host_binary(cache: Path, runner: Runner) -> Path:
    """A host build of the current source, cached by the source's hash."""
    digest = hashlib.sha256(flush_test_source().encode() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    binary = cache / f"pmem-flush-test-{digest}"
    if binary.exists():
        return binary
    # Compiled under a name of its own and renamed into place: a concurrent run never sees half a binary.
    partial = compile_flush_test(cache / f".{binary.name}.{os.getpid()}", runner=runner)
    os.replace(partial, binary)
    (partial.parent / f"{partial.name}.c").unlink(missing_ok=True)
    return binary


def run_on_host(arguments: list[str], cache: Path, runner: Optional[Runner] = None) -> int:
    runner = runner or Runner()
    return runner.interactive([str(host_binary(cache, runner)), *arguments])
