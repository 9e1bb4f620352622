"""pmem-image diff (pure): identical builds say so; each kind of difference is named."""

import copy
import json

import pytest

from builder.build.compare import Build, compare, difference_text, read_build
from builder.cli.main import main
from builder.profile.errors import UsageError

CONTENTS = {
    "partition_table": {"label": "gpt", "id": "D156EEE9", "partitions": [
        {"node": "1", "start": 2048, "size": 2097152, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
         "uuid": "A49848C6", "name": "esp"}]},
    "filesystems": {"1": {"TYPE": "vfat", "UUID": "03A9-9518", "LABEL": "ESP"}},
    "files": [{"path": "/etc/hostname", "type": "file", "mode": "0644", "owner": "0:0", "size": 8, "sha256": "aa"},
              {"path": "/bin", "type": "symlink", "mode": "0777", "owner": "0:0", "target": "usr/bin"}],
}


def build(label="A", **changes) -> Build:
    side = Build(label, {"default.raw": "1" * 64, "default.initrd": "2" * 64}, {"systemd": "254.26", "ndctl": "76"},
                 copy.deepcopy(CONTENTS))
    for key, value in changes.items():
        setattr(side, key, value)
    return side


def test_identical_builds():
    difference = compare(build("A"), build("B"))
    assert difference.identical and not difference.not_compared
    assert "identical: every artifact has the same sha256" in difference_text(build("A"), build("B"), difference)


def test_each_kind_of_difference_is_named():
    b = build("B")
    b.artifacts["default.raw"] = "3" * 64
    b.packages["ndctl"] = "78"
    b.contents["files"][0]["sha256"] = "bb"
    b.contents["files"].append({"path": "/var/log/dpkg.log", "type": "file", "mode": "0644", "owner": "0:0",
                                "size": 1, "sha256": "cc"})
    b.contents["filesystems"]["1"]["UUID"] = "0000-0000"
    difference = compare(build("A"), b)
    assert not difference.identical
    assert list(difference.artifacts) == ["default.raw"] and difference.packages == {"ndctl": ["76", "78"]}
    assert set(difference.files) == {"/etc/hostname", "/var/log/dpkg.log"}
    assert difference.partitions == {"partition1.fs.UUID": ["03A9-9518", "0000-0000"]}
    text = difference_text(build("A"), b, difference)
    assert "/etc/hostname: sha256 aa -> bb" in text and "/var/log/dpkg.log: only in B" in text
    assert "ndctl: 76 -> 78" in text and "partition1.fs.UUID: 03A9-9518 -> 0000-0000" in text


def test_a_side_without_contents_is_said_not_compared():
    difference = compare(build("A"), build("B", contents=None))
    assert difference.identical and difference.not_compared == [
        "files and partitions (no contents.json: built before pmem-image recorded it)"]


def test_read_build_and_the_command(tmp_path, capsys):
    for side, version in (("a", "76"), ("b", "78")):
        directory = tmp_path / side / "default"
        directory.mkdir(parents=True)
        (directory / "manifest.json").write_text(json.dumps(
            {"name": "default", "files": [{"name": "default.raw", "sha256": "1" * 64},
                                          {"name": "build.log", "sha256": side * 64}]}))
        (directory / "default.manifest").write_text(json.dumps({"packages": [{"name": "ndctl", "version": version}]}))
        (directory / "contents.json").write_text(json.dumps(CONTENTS))
    a, b = tmp_path / "a" / "default", tmp_path / "b" / "default"
    assert read_build(a).artifacts == {"default.raw": "1" * 64}      # the log is not an artifact
    assert main(["diff", str(a), str(a)]) == 0
    assert main(["diff", "--json", str(a), str(b)]) == 1
    assert json.loads(capsys.readouterr().out.split("\n", 3)[-1])["packages"] == {"ndctl": ["76", "78"]}
    assert main(["diff", str(a / "contents.json"), str(b / "contents.json")]) == 0
    with pytest.raises(UsageError, match="holds no build"):
        read_build(tmp_path)
