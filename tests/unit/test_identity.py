"""Plan identity vs view: the build key depends only on what changes the image."""

import json
import shutil
from pathlib import Path

from builder.build.pipeline import build_key
from builder.build.toolchain import code_sha256, export_tool, pinned_tools, toolchain, toolchain_identity
from builder.knowledge.host import AptMirror
from builder.render.outputs import render
from conftest import PROFILES, plan_of_file, plan_of_text
from builder.plan.planner import make_plan
from builder.profile.loader import read_profile

TARBALL = """name: t
description: {description}
distribution: {{name: debian, release: bookworm}}
kernel: {{source: tarball, version: "6.6", url: linux-6.6.tar.xz, sha256: "{sha}"}}
pmem:
  - {{size: 1G, offset: {offset}}}
"""


def plan_json(capsys, path: Path) -> dict:
    from builder.cli.main import main
    assert main(["plan", "--json", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


def test_same_profile_in_two_directories_and_a_new_description_keep_the_identity(capsys, tmp_path: Path):
    first, second = tmp_path / "a" / "p.yaml", tmp_path / "b" / "deeper" / "p.yaml"
    for path, description in ((first, "one"), (second, "something else entirely")):
        path.parent.mkdir(parents=True)
        path.write_text(TARBALL.format(description=description, sha="a" * 64, offset="4G"))
    a, b = plan_json(capsys, first), plan_json(capsys, second)
    assert a["identity_hash"] == b["identity_hash"]
    assert a["view"]["kernel_url"] != b["view"]["kernel_url"]        # host paths are view only
    assert a["view"]["description"] == "one"


def test_a_region_change_changes_the_identity(capsys, tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(TARBALL.format(description="x", sha="a" * 64, offset="4G"))
    before = plan_json(capsys, path)["identity_hash"]
    path.write_text(TARBALL.format(description="x", sha="a" * 64, offset="5G"))
    moved = plan_json(capsys, path)["identity_hash"]
    assert moved != before
    # Another kernel source, with nothing else changed: compared with the plan that differs only in it
    # (review L3: compared with `before`, the offset alone made the two differ).
    path.write_text(TARBALL.format(description="x", sha="b" * 64, offset="5G"))
    assert plan_json(capsys, path)["identity_hash"] != moved


def test_the_build_key_ignores_the_hosts_mirror_but_not_the_release_suites():
    profile, source = read_profile(PROFILES / "default.yaml")
    keys = set()
    for mirror in (AptMirror(archive="http://mirror-a.example/debian", security="http://a.example/sec"),
                   AptMirror(archive="http://mirror-b.example/debian")):
        plan, _ = make_plan(profile, str(PROFILES / "default.yaml"), source, mirror)
        files = render(plan)
        assert mirror.archive in files["mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources"].content
        keys.add(build_key(plan, files, "24.3"))
    assert len(keys) == 1
    trixie, _ = plan_of_text("name: default\ndistribution: {name: debian, release: trixie}\n"
                             "pmem:\n  - {size: 1G, offset: 4G}\n")
    assert trixie.apt_suites == ["trixie", "trixie-updates"] and trixie.apt_security_suite == "trixie-security"


def test_the_view_holds_only_what_does_not_change_the_image():
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    assert set(plan.view()) == {"description", "mirror", "kernel_url", "kernel_path", "extra_tree_paths", "memory_map"}
    assert not set(plan.view()) & set(plan.identity())


def test_copied_profile_elsewhere_gets_the_same_build_key(tmp_path: Path):
    copy = tmp_path / "elsewhere" / "default.yaml"
    copy.parent.mkdir()
    shutil.copy(PROFILES / "default.yaml", copy)
    keys = {build_key(plan, render(plan), "24.3") for plan in (plan_of_file(PROFILES / "default.yaml")[0],
                                                               plan_of_file(copy)[0])}
    assert len(keys) == 1


def _copy_of_the_package(tmp_path: Path) -> Path:
    package = tmp_path / "builder"
    shutil.copytree(Path(code_sha256.__code__.co_filename).parents[1], package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return package


def test_a_change_to_byte_writing_code_changes_the_build_key_and_the_cli_does_not(tmp_path: Path):
    """A new export or template fix must not leave an old output up to date (nor be served from a cache
    under the old key); code that only reads outputs (cli/, verify/) leaves the key alone."""
    package = _copy_of_the_package(tmp_path)
    before = code_sha256(package)
    (package / "cli" / "views.py").write_text((package / "cli" / "views.py").read_text() + "\n# wording\n")
    assert code_sha256(package) == before
    exports = package / "build" / "exports.py"
    exports.write_text(exports.read_text().replace("qemu-img", "qemu-img ", 1))
    assert code_sha256(package) != before
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    files = render(plan)
    assert build_key(plan, files, "24.3", "", "code=" + before) != build_key(plan, files, "24.3", "",
                                                                              "code=" + code_sha256(package))


def test_a_pinned_tool_version_is_in_the_build_key_and_a_description_is_not(tmp_path: Path):
    tools = tmp_path / "tools" / "bin"
    tools.mkdir(parents=True)
    (tools.parent / "versions.tsv").write_text("e2fsprogs\t1.47.2-3~bpo12+1\nmkosi\t24.3-1~bpo12+1\n")
    assert pinned_tools(tools) == {"e2fsprogs": "1.47.2-3~bpo12+1", "mkosi": "24.3-1~bpo12+1"}
    first = toolchain_identity(tools)
    (tools.parent / "versions.tsv").write_text("e2fsprogs\t1.47.3-1\nmkosi\t24.3-1~bpo12+1\n")
    second = toolchain_identity(tools)
    assert "e2fsprogs=1.47.3-1" in second and first != second
    assert "qemu-img=" in second and "code=" in second
    keys = set()
    for description, tools_line in (("one", first), ("two", first), ("one", second)):
        plan, _ = plan_of_text(f"name: default\ndescription: {description}\ndistribution: {{name: debian, release: bookworm}}\n"
                               "pmem:\n  - {size: 1G, offset: 4G}\n")
        keys.add(build_key(plan, render(plan), "24.3", "", tools_line))
    assert len(keys) == 2          # the description changed nothing; the tool version did


def test_a_pinned_export_tool_is_run_and_recorded_instead_of_the_hosts(tmp_path: Path):
    """bootstrap's exports/ copy of qemu-img is what exports run and what the identity names (by its package
    version, not the host's qemu-img); without one the host's qemu-img is run and recorded."""
    tools = tmp_path / "tools" / "bin"
    tools.mkdir(parents=True)
    (tools.parent / "versions.tsv").write_text("mkosi\t24.3-1~bpo12+1\nqemu-utils\t1:10.0.2+ds-2\n")
    assert export_tool("qemu-img", tools) == "qemu-img" and "qemu-img" in toolchain(tools)
    (tools.parent / "exports").mkdir()
    (tools.parent / "exports" / "qemu-img").write_text("#!/bin/sh\n")
    assert export_tool("qemu-img", tools) == str(tools.parent / "exports" / "qemu-img")
    recorded = toolchain(tools)
    assert recorded["qemu-utils"] == "1:10.0.2+ds-2" and "qemu-img" not in recorded and "tar" in recorded
    assert export_tool("qemu-img", None) == "qemu-img"
