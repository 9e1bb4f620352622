"""The native flush test, compiled with the real gcc (plain and with ASan/UBSan) and run on the host.

On the host the file is on tmpfs or the repo's filesystem: MAP_SYNC is refused there, so the
msync fallback runs; the DAX path is proven inside the booted image (tests/boot)."""

import json
import subprocess
from pathlib import Path

import pytest

from builder.build.flushtest import compile_flush_test

pytestmark = pytest.mark.integration


def cpu_flags() -> set[str]:
    line = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
    return set(line.split(":", 1)[1].split())


@pytest.fixture(scope="module", params=[False, True], ids=["O2", "asan-ubsan"])
def binary(request, tmp_path_factory) -> Path:
    return compile_flush_test(tmp_path_factory.mktemp("bin") / "pmem-flush-test", sanitize=request.param)


def run(binary: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120, env=env)


def test_all_methods_the_cpu_has_verify(binary, tmp_path):
    result = run(binary, "--json", "--method", "all", "--size", "2M", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    flags = cpu_flags()
    expected = [m for m, flag in (("clwb", "clwb"), ("clflushopt", "clflushopt"), ("clflush", "clflush"),
                                  ("ntstore", "sse2")) if flag in flags] + ["msync", "msync-4k", "memcpy"]
    assert [r["method"] for r in report["results"]] == expected
    assert report["features"]["clwb"] == ("clwb" in flags)
    assert report["map_sync"] is False and report["map_sync_error"]  # not DAX here: msync path
    assert report["verification"] == "ok" and all(r["verified"] in (True, None) for r in report["results"])
    assert all(r["bytes"] == 2 << 20 and r["gbps"] > 0 and r["ns_per_line"] > 0 for r in report["results"])
    assert "cannot show that lines were flushed" in report["note"]
    assert list(tmp_path.iterdir()) == []  # the temporary file is removed


def test_human_output_names_the_limits(binary, tmp_path):
    result = run(binary, "--size", "1M", str(tmp_path))
    assert result.returncode == 0
    assert "MAP_SYNC: refused" in result.stdout and "cannot show that lines were flushed" in result.stdout
    assert "verification: ok" in result.stdout


def test_file_path_and_size_rounding(binary, tmp_path):
    target = tmp_path / "data"
    result = run(binary, "--json", "--size", "5000", str(target))
    assert result.returncode == 0 and json.loads(result.stdout)["size"] == 8192 and target.stat().st_size == 8192


@pytest.mark.parametrize("hidden, method", [("PMEM_NO_CLWB", "clwb"), ("PMEM_NO_CLFLUSHOPT", "clflushopt"),
                                            ("PMEM_NO_MOVNT", "ntstore")])
def test_forced_method_the_cpu_lacks_is_a_clear_error(binary, tmp_path, hidden, method):
    result = run(binary, "--method", method, str(tmp_path), env={hidden: "1"})
    assert result.returncode == 2 and "this CPU does not have it" in result.stderr and "CPUID" in result.stderr


def test_auto_picks_the_best_flush_the_cpu_has(binary, tmp_path):
    flags = cpu_flags()
    best = "clwb" if "clwb" in flags else "clflushopt" if "clflushopt" in flags else "clflush"
    assert json.loads(run(binary, "--json", "--size", "1M", str(tmp_path)).stdout)["selected"] == best
    hidden = run(binary, "--json", "--size", "1M", str(tmp_path), env={"PMEM_NO_CLWB": "1", "PMEM_NO_CLFLUSHOPT": "1"})
    assert json.loads(hidden.stdout)["selected"] == "clflush"


def test_unknown_method(binary, tmp_path):
    result = run(binary, "--method", "clzero", str(tmp_path))
    assert result.returncode == 2 and "use auto, clwb" in result.stderr


@pytest.mark.parametrize("args, with_path, message", [
    (["--size", "0"], True, "--size must be above 0"), (["--size", "100T"], True, "unknown unit"),
    (["--size", "65G"], True, "larger than the 64 GiB"), (["--size"], False, "--size needs a value"),
    (["--bogus"], True, "unknown option --bogus"), ([], False, "PATH is required"),
    (["--write-seed", "1", "--check-seed", "1"], True, "exclude each other"),
    (["--write-seed", "x"], True, "not a non-negative"),
])
def test_bad_arguments_exit_2(binary, tmp_path, args, with_path, message):
    result = run(binary, *args, *([str(tmp_path)] if with_path else []))
    assert result.returncode == 2 and message in result.stderr


def test_missing_directory_and_full_filesystem_exit_2(binary, tmp_path):
    result = run(binary, str(tmp_path / "no" / "such" / "dir"))
    assert result.returncode == 2 and "No such file or directory" in result.stderr
    full = Path("/dev/full")
    if full.exists():
        result = run(binary, "--size", "1M", str(full))
        assert result.returncode == 2 and "error" in result.stderr


def test_no_space_left_is_reported(binary, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        result = run(binary, "--size", "8M", str(mount))
        assert result.returncode == 2 and "No space left on device" in result.stderr
    finally:
        subprocess.run(["umount", str(mount)])


def test_corrupted_read_back_is_detected(binary, tmp_path):
    result = run(binary, "--json", "--corrupt-for-test", "--size", "1M", str(tmp_path))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verification"] == "failed" and report["results"][0]["verified"] is False


def test_seed_survives_in_the_file(binary, tmp_path):
    assert run(binary, "--write-seed", "42", "--size", "1M", str(tmp_path)).returncode == 0
    assert (tmp_path / "pmem-flush-test.seed").exists()
    assert run(binary, "--check-seed", "42", "--size", "1M", str(tmp_path)).returncode == 0
    result = run(binary, "--json", "--check-seed", "43", "--size", "1M", str(tmp_path))
    assert result.returncode == 1 and json.loads(result.stdout)["verification"] == "failed"


def test_cli_runs_it_on_the_host(tmp_path):
    from builder.cli.main import main
    assert main(["flush-test", "--out", str(tmp_path / "out"), "--", "--size", "1M", str(tmp_path)]) == 0


def test_devices_and_symlinks_are_never_written(binary, tmp_path):
    """A PATH that is a device or a symlink is refused before anything is written (exit 2)."""
    result = run(binary, "--size", "1M", "/dev/null")
    assert result.returncode == 2 and "not a regular file" in result.stderr
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    result = run(binary, "--size", "1M", str(tmp_path / "link"))
    assert result.returncode == 2 and not (tmp_path / "elsewhere").exists()
