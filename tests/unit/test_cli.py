"""The command line: exit codes, error format, nothing written on bad input, JSON outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli.main import main
from conftest import FIXTURES, PROFILES, ROOT


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok(capsys):
    code, out, _ = run(capsys, "validate", *sorted(PROFILES.glob("*.yaml")))
    assert code == 0 and out.count(": ok (") == len(list(PROFILES.glob("*.yaml")))


def test_validate_bad_profile_exit_2_without_traceback(capsys):
    bad = FIXTURES / "invalid" / "outside-ram.yaml"
    code, out, err = run(capsys, "validate", bad)
    assert code == 2 and "Traceback" not in err
    assert f"{bad}:8:24: pmem[0].offset: region 1G!4G" in err and "\n  hint: " in err
    assert all(line.startswith((f"{bad}:", "  hint: ")) for line in err.splitlines())


def test_validate_json_lists_problems(capsys):
    code, out, _ = run(capsys, "validate", "--json", FIXTURES / "invalid" / "misaligned.yaml", PROFILES / "default.yaml")
    results = json.loads(out)
    assert code == 2 and [r["valid"] for r in results] == [False, True]
    assert {p["field"] for p in results[0]["problems"]} == {"pmem[0].size", "pmem[0].offset"}
    assert results[0]["problems"][0]["line"] == 7


def test_render_bad_profile_writes_nothing(capsys, tmp_path: Path):
    target = tmp_path / "tree"
    code, _, err = run(capsys, "render", FIXTURES / "invalid" / "hostile-values.yaml", "-o", target)
    assert code == 2 and not target.exists() and list(tmp_path.iterdir()) == []


def test_render_writes_and_replaces_its_own_tree(capsys, tmp_path: Path):
    target = tmp_path / "tree"
    assert run(capsys, "render", PROFILES / "default.yaml", "-o", target)[0] == 0
    (target / "stale-file").write_text("x")
    assert run(capsys, "render", PROFILES / "default.yaml", "-o", target)[0] == 0
    assert not (target / "stale-file").exists() and (target / "mkosi.conf").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tree"]


def test_render_refuses_a_foreign_directory_with_force_too(capsys, tmp_path: Path):
    """render -o ~ --force once replaced a home directory: only an empty directory or an earlier render is."""
    (tmp_path / "precious").write_text("keep me")
    for extra in ([], ["--force"]):
        code, _, err = run(capsys, "render", PROFILES / "default.yaml", "-o", tmp_path, *extra)
        assert code == 2 and "is not an earlier render of pmem-image" in err
        assert (tmp_path / "precious").read_text() == "keep me"
    rendered = tmp_path / "project"
    assert run(capsys, "render", PROFILES / "default.yaml", "-o", rendered)[0] == 0
    assert run(capsys, "render", PROFILES / "multi-region.yaml", "-o", rendered)[0] == 0     # its own render: replaced


def test_plan_text_and_json(capsys):
    code, out, _ = run(capsys, "plan", PROFILES / "multi-region.yaml")
    assert code == 0 and "memmap=1G!5G" in out and "/dev/pmem1" in out and "guest physical memory" in out
    assert "|" in out and "#" in out  # the memory picture shows pmem
    code, out, _ = run(capsys, "plan", "--json", PROFILES / "multi-region.yaml")
    plan = json.loads(out)
    assert len(plan["identity_hash"]) == 64 and [r["device"] for r in plan["identity"]["regions"]] == ["pmem0", "pmem1"]
    assert "description" in plan["view"] and "description" not in plan["identity"]


def test_schema_is_json_schema_with_all_keys(capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and set(schema["properties"]) == {
        "name", "description", "distribution", "kernel", "vm", "pmem", "users", "root", "packages", "extra_trees",
        "ssh", "network", "disk", "console_autologin", "pmdk", "formats", "cloud_init", "pmem_backend", "mirror",
            "cxl"}
    assert schema["$defs"]["User"]["additionalProperties"] is False
    assert schema["$defs"]["PmemRegion"]["additionalProperties"] is False


def test_internal_errors_are_short_unless_debug(capsys, monkeypatch):
    import builder.cli.main as cli
    monkeypatch.setattr(cli, "load_plan", lambda path, allowed=(): 1 / 0)
    code, _, err = run(capsys, "plan", PROFILES / "default.yaml")
    assert code == 70 and "internal error: ZeroDivisionError" in err and "Traceback" not in err
    code, _, err = run(capsys, "--debug", "plan", PROFILES / "default.yaml")
    assert "Traceback" in err


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "builder.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    for verb in ("validate", "plan", "render", "build", "verify", "schema"):
        assert verb in result.stdout


def test_verify_refuses_a_build_from_another_plan(capsys, tmp_path: Path):
    built = tmp_path / "default"
    built.mkdir()
    (built / "manifest.json").write_text(json.dumps({"plan_hash": "0" * 64}))
    code, _, err = run(capsys, "verify", "--out", tmp_path, PROFILES / "default.yaml")
    assert code == 2 and "was built from a different plan" in err and "pmem-image build" in err


@pytest.mark.parametrize("argv, code", [
    (["validate", str(FIXTURES / "invalid" / "overlap.yaml")], 2),
    (["plan", "/nonexistent/profile.yaml"], 2),
    (["verify", "--timeout", "0", str(PROFILES / "default.yaml")], 2),
    (["nonsense-command"], 2),
])
def test_exit_codes_and_json_status(capsys, argv, code):
    try:
        got = main(argv)
    except SystemExit as exit:   # argparse's own usage errors
        got = exit.code
    assert got == code
    if argv[0] == "plan":
        assert main(["plan", "--json", *argv[1:]]) == 2
        assert json.loads(capsys.readouterr().out)["exit_code"] == 2


def test_test_refuses_options_between_the_image_and_the_command(capsys):
    """argparse hands everything after PROFILE to the command: `out/x --json -- true` must not run "--json"."""
    code, out, err = run(capsys, "test", PROFILES / "default.yaml", "--json", "--", "true")
    assert code == 2 and "'--json' comes after" in err and "options before PROFILE|out/NAME" in err, err
    code, _, err = run(capsys, "test", PROFILES / "default.yaml", "--")
    assert code == 2 and "needs a command" in err
