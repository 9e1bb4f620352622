"""The GitHub Action (action.yml) and the GitLab job (ci/pmem-image-test.gitlab-ci.yml) users copy, and the
script both run (scripts/ci-test): inputs reach it as environment variables, never as script text, and it
hands them to pmem-image (or to a privileged container) unchanged, whatever they hold."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

HOSTILE = 'make check"; touch PWNED; echo "$(touch PWNED2)` touch PWNED3 `'


def test_the_action_is_composite_with_its_inputs_passed_through_env_only():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert set(action["inputs"]) == {"profile", "run", "share", "substitute"}
    assert action["inputs"]["profile"]["required"] and action["inputs"]["run"]["required"]
    assert action["runs"]["using"] == "composite"
    [step] = action["runs"]["steps"]
    assert "${{" not in step["run"] and "scripts/ci-test" in step["run"]
    for name in action["inputs"]:
        assert step["env"][f"PMEM_IMAGE_{name.upper()}"] == f"${{{{ inputs.{name} }}}}"


def test_the_gitlab_job_reads_its_variables_from_the_environment():
    job = yaml.safe_load((ROOT / "ci" / "pmem-image-test.gitlab-ci.yml").read_text())[".pmem-image-test"]
    assert job["script"][-1] == "/opt/pmem-image/scripts/ci-test"
    assert not any("PMEM_IMAGE_RUN" in line or "PMEM_IMAGE_PROFILE" in line for line in job["script"])
    assert {"PMEM_IMAGE_REPOSITORY", "PMEM_IMAGE_SHARE", "PMEM_IMAGE_SUBSTITUTE"} <= set(job["variables"])


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_ci_test_passes_shellcheck():
    lint = subprocess.run(["shellcheck", str(ROOT / "scripts" / "ci-test")], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def _fake(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _checkout(tmp_path: Path) -> Path:
    """A checkout with the real ci-test and fakes of bootstrap and pmem-image that record their arguments."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "ci-test", repo / "scripts" / "ci-test")
    _fake(repo / "scripts" / "bootstrap", f'echo bootstrap >> "{tmp_path}/calls"\n')
    _fake(repo / ".venv" / "bin" / "pmem-image",
          f'for a in "$@"; do printf "%s\\n" "$a"; done >> "{tmp_path}/calls"; echo --- >> "{tmp_path}/calls"\n'
          '[ "$1" = test ] && exit 7\nexit 0\n')
    return repo


def _run(repo: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run([str(repo / "scripts" / "ci-test")], cwd=work, capture_output=True, text=True,
                          env={"PATH": f"{tmp_path}/bin:{os.environ['PATH']}", **env})


def test_direct_mode_builds_then_tests_with_the_command_unchanged(tmp_path):
    repo = _checkout(tmp_path)
    result = _run(repo, tmp_path, PMEM_IMAGE_CI_MODE="direct", PMEM_IMAGE_PROFILE="profiles/my lab.yaml",
                  PMEM_IMAGE_RUN=HOSTILE, PMEM_IMAGE_SUBSTITUTE="127.0.0.1:5000/cache")
    assert result.returncode == 7, result.stderr          # the command's exit code is the job's
    calls = (tmp_path / "calls").read_text().split("---\n")
    assert calls[0] == "bootstrap\nbuild\n--substitute\n127.0.0.1:5000/cache\nprofiles/my lab.yaml\n"
    assert calls[1].splitlines() == ["test", "--share", ".:/src", "profiles/my lab.yaml", "--", "sh", "-c", HOSTILE]
    assert not list(tmp_path.rglob("PWNED*"))


def test_docker_mode_hands_the_inputs_to_the_container_as_environment(tmp_path):
    repo = _checkout(tmp_path)
    _fake(tmp_path / "bin" / "docker", f'for a in "$@"; do printf "%s\\n" "$a"; done > "{tmp_path}/docker"\n'
                                       f'printf "%s" "$PMEM_IMAGE_RUN" > "{tmp_path}/docker-env"\n')
    result = _run(repo, tmp_path, PMEM_IMAGE_CI_MODE="docker", PMEM_IMAGE_PROFILE="p.yaml", PMEM_IMAGE_RUN=HOSTILE)
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "docker").read_text().splitlines()
    assert argv[:3] == ["run", "--rm", "--privileged"] and argv[-2:] == ["debian:bookworm", f"{repo}/scripts/ci-test"]
    assert "PMEM_IMAGE_RUN" in argv and HOSTILE not in "\n".join(argv)
    assert (tmp_path / "docker-env").read_text() == HOSTILE
    assert not list(tmp_path.rglob("PWNED*"))


def test_missing_inputs_and_an_unknown_mode_are_refused(tmp_path):
    repo = _checkout(tmp_path)
    assert _run(repo, tmp_path, PMEM_IMAGE_RUN="true").returncode != 0
    unknown = _run(repo, tmp_path, PMEM_IMAGE_PROFILE="p.yaml", PMEM_IMAGE_RUN="true", PMEM_IMAGE_CI_MODE="vm")
    assert unknown.returncode == 2 and "auto, direct or docker" in unknown.stderr
    assert not (tmp_path / "calls").exists()
