"""pmem-image matrix against the engines' documented limits, and the shipped example workflows wired to it."""

import json

import pytest
import yaml

from builder.cli.main import main
from builder.cli.matrix import GITHUB_MAX_JOBS, GITLAB_MAX_JOBS, github, gitlab, jobs
from builder.profile.errors import UsageError
from conftest import PROFILES, ROOT, plan_of_file


def entries(count: int) -> list[dict]:
    return [{"job": f"p{i}", "image": f"p{i}", "profile": f"profiles/p{i}.yaml", "identity": f"{i:064x}",
             "distribution": "debian-bookworm", "backend": "memmap"} for i in range(count)]


def test_a_job_per_profile_or_per_profile_and_format_with_the_identity():
    templates, default = PROFILES / "templates.yaml", PROFILES / "default.yaml"
    plans = [(templates, plan_of_file(templates)[0]), (default, plan_of_file(default)[0])]
    assert [e["job"] for e in jobs(plans, False)] == ["templates", "default"]
    per_format = jobs(plans, True)
    assert [e["job"] for e in per_format] == [f"templates-{f}" for f in plans[0][1].formats] + ["default-raw"]
    assert per_format[-1]["format"] == "" and per_format[-1]["identity"] == plans[1][1].digest()


def test_github_matrices_hold_at_most_256_jobs_and_round_trip():
    many = entries(GITHUB_MAX_JOBS + 44)
    first, second = json.loads(github(many, 0)), json.loads(github(many, 1))
    assert len(first["include"]) == GITHUB_MAX_JOBS and first["include"] + second["include"] == many
    with pytest.raises(UsageError, match="there are 2 chunk"):
        github(many, 2)
    huge = [e | {"profile": "x" * 5000} for e in entries(250)]       # 1.25 MB of job list
    with pytest.raises(UsageError, match="above GitHub's 1 MB"):
        github(huge, 0)


def test_gitlab_child_pipeline_splits_at_200_jobs_and_parses():
    pipeline = yaml.safe_load(gitlab(entries(2 * GITLAB_MAX_JOBS + 50)))
    build_jobs = [name for name in pipeline if name.startswith("pmem-image-")]
    assert [len(pipeline[n]["parallel"]["matrix"]) for n in build_jobs] == [200, 200, 50]
    first = pipeline["pmem-image-0"]
    assert first["parallel"]["matrix"][3] == {"PMEM_IMAGE_PROFILE": "profiles/p3.yaml", "PMEM_IMAGE_JOB": "p3",
                                              "PMEM_IMAGE_IDENTITY": f"{3:064x}", "PMEM_IMAGE_FORMAT": ""}
    assert all(isinstance(v, str) for entry in first["parallel"]["matrix"] for v in entry.values())  # 1 job each
    assert first["artifacts"]["reports"]["junit"] == "proof-*.xml" and "$PMEM_IMAGE_PROFILE" in first["script"][0]


def test_the_github_example_feeds_the_generated_matrix_through_fromjson():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    generate = workflow["jobs"]["matrix"]
    assert "pmem-image matrix profiles --format github" in generate["steps"][1]["run"]
    assert generate["outputs"]["matrix"] == "${{ steps.generate.outputs.matrix }}"
    image = workflow["jobs"]["image"]
    assert image["needs"] == "matrix" and image["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    used = " ".join(json.dumps(step) for step in image["steps"])
    for key in ("matrix.profile", "matrix.job", "matrix.image", "matrix.identity"):
        assert key in used
        assert key.split(".")[1] in entries(1)[0]        # every key the workflow reads is in each entry


def test_the_gitlab_example_triggers_the_generated_child_pipeline(capsys):
    pipeline = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    assert "pmem-image matrix profiles --format gitlab > images.yml" in " ".join(pipeline["generate"]["script"])
    assert pipeline["generate"]["artifacts"]["paths"] == ["images.yml"]
    assert pipeline["images"]["trigger"] == {"include": [{"artifact": "images.yml", "job": "generate"}],
                                             "strategy": "depend"}
    assert main(["matrix", "--format", "gitlab", str(PROFILES)]) == 0
    child = yaml.safe_load(capsys.readouterr().out)
    profiles = [e["PMEM_IMAGE_PROFILE"] for e in child["pmem-image-0"]["parallel"]["matrix"]]
    assert profiles == sorted(str(p) for p in PROFILES.glob("*.yaml"))


def test_an_invalid_profile_fails_the_matrix(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("name: Bad\n")
    assert main(["matrix", str(tmp_path)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_example_workflows_never_expand_expressions_into_shell_text():
    """`${{ ... }}` inside a run: block is pasted into the script before the shell parses it; matrix values
    must go through env: instead (GitHub's documented script-injection pattern)."""
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for job in yaml.safe_load(workflow.read_text())["jobs"].values():
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), (workflow.name, step.get("name"))
