"""build and verify over many profiles (with the stand-in mkosi): order, status lines, the summary, a failing
profile with and without --keep-going, bad input before anything is built, --json, and JUnit XML."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from builder.cli.many import Outcome, expand, exit_code, machine_jobs, summary
from builder.verify.junit import Suite, junit_xml
from builder.verify.result import Check
from conftest import CLI_WITHOUT_ROOT_CHECK, PROFILES, ROOT


def profiles(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / f"{name}.yaml").write_text((PROFILES / "default.yaml").read_text()
                                                .replace("name: default", f"name: {name}"))
    return directory


def cli(env: dict, *args: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_a_directory_of_profiles_is_built_in_order_with_a_summary(env, tmp_path):
    directory = profiles(tmp_path, "beta", "alpha")
    code, _, err = cli(env, "build", str(directory))
    assert code == 0, err
    assert err.index("== alpha: built") < err.index("== beta: built")
    assert "profile  result" in err and "2 built" in err
    code, _, err = cli(env, "build", str(directory / "alpha.yaml"), str(directory))   # alpha once
    assert code == 0 and err.count("== alpha: up to date") == 1 and "2 up to date" in err


def test_a_failing_profile_stops_the_rest_unless_keep_going(env, tmp_path):
    directory = profiles(tmp_path, "alpha", "beta", "gamma")
    env["FAKE_MKOSI_FAIL_NAME"] = "beta"
    code, _, err = cli(env, "build", str(directory))
    assert code == 3 and "== beta: failed" in err and "== gamma" not in err
    assert "1 built, 1 failed, 1 not run (no --keep-going)" in err
    code, out, err = cli(env, "build", "--keep-going", "--json", str(directory))
    result = json.loads(out)
    assert code == 3 and result["exit_code"] == 3 and result["not_run"] == []
    assert [(p["name"], p["result"]) for p in result["profiles"]] == [
        ("alpha", "up to date"), ("beta", "failed"), ("gamma", "built")]


def test_one_invalid_profile_fails_the_command_before_anything_is_built(env, tmp_path):
    directory = profiles(tmp_path, "alpha")
    (directory / "broken.yaml").write_text("name: Broken\n")
    code, _, err = cli(env, "build", str(directory))
    assert code == 2 and "broken.yaml" in err and "1 of 2 profiles are invalid; nothing was built" in err
    assert not (Path(env["PMEM_IMAGE_OUT"]) / "alpha").exists()


def test_expand_and_the_machine_default(tmp_path):
    directory = profiles(tmp_path, "b", "a")
    (directory / "notes.txt").write_text("not a profile")
    assert expand([directory / "b.yaml", directory]) == [directory / "b.yaml", directory / "a.yaml"]
    assert machine_jobs() >= 1


def test_summary_and_exit_code_of_the_first_failure():
    outcomes = [Outcome("a.yaml", "a", "passed", 0, 40), Outcome("b.yaml", "b", "proof failed", 1, 41),
                Outcome("c.yaml", "c", "failed", 3, 2)]
    assert exit_code(outcomes) == 1 and exit_code(outcomes[:1]) == 0
    assert summary(outcomes, [Path("d.yaml")]).splitlines()[-1] == \
        "1 passed, 1 proof failed, 1 failed, 1 not run (no --keep-going)"


def test_junit_has_a_testcase_per_row_and_failures_with_evidence():
    suites = [Suite("default", [Check("boot report", True, "kernel 6.1"),
                                Check("/dev/pmem0 DAX active", False, "no dax\x1b[31m", ["EXT4-fs: DAX off"])], 41.5, "tcg"),
              Suite("trixie", [Check("boot report", True, "kernel 6.12")], 38.0, "tcg")]
    root = ET.fromstring(junit_xml(suites))
    assert root.get("tests") == "3" and root.get("failures") == "1"
    first = root.find("testsuite[@name='default']")
    assert first.get("failures") == "1" and first.get("time") == "41.5"
    failure = first.find("testcase[@name='/dev/pmem0 DAX active']/failure")
    assert failure.get("message") == "no dax?[31m" and failure.text == "EXT4-fs: DAX off"
    assert root.find("testsuite[@name='trixie']/testcase").get("classname") == "pmem-image.trixie"


def test_jobs_2_builds_two_profiles_at_once_and_their_mkosi_runs_take_turns(env, tmp_path):
    env["FAKE_MKOSI_MODE"] = "slow"
    directory = profiles(tmp_path, "alpha", "beta")
    code, _, err = cli(env, "build", "--jobs", "2", str(directory))
    assert code == 0 and "2 built" in err, err
    state = Path(env["FAKE_MKOSI_STATE"])
    spans = sorted((float((state / f"{n}.start").read_text()), float((state / f"{n}.end").read_text()))
                   for n in ("alpha", "beta"))
    assert spans[0][1] <= spans[1][0], f"mkosi runs overlapped: {spans}"
    assert err.index("== alpha") < err.index("== beta")          # reported in the profiles' order


def test_jobs_must_be_a_count(capsys):
    import pytest
    from builder.cli.main import main
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as caught:
            main(["build", "--jobs", bad, str(PROFILES / "default.yaml")])
        assert caught.value.code == 2 and "is not a whole number of 1 or more" in capsys.readouterr().err
