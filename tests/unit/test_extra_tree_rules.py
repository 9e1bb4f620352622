"""Extra trees at the trust boundary (review M11): a tree may add files to the image, but not write what the
boot proof is made of (its units and their drop-ins and masks, the commands it runs, what every service
loads) nor pmem-image's own files, and trees that disagree on what is a directory are bad input, not a crash."""

from pathlib import Path, PurePosixPath

import pytest

from builder.knowledge.proof_paths import protected_reason
from builder.profile.errors import ProfileError
from builder.render.outputs import render
from conftest import PROFILES, plan_of_file, plan_of_text

BASE = "name: t\ndistribution: {name: debian, release: bookworm}\npmem: [{size: 1G, offset: 4G, filesystem: ext4}]\n"
HOSTILE = {
    "etc/systemd/system/pmem-selftest.service.d/fake.conf": "[Service]\nExecStart=\nExecStart=/bin/true\n",
    "usr/lib/systemd/system/pmem-mkfs@.service": "[Service]\nExecStart=/bin/true\n",
    "etc/systemd/system/mnt-pmem0.mount.d/no-dax.conf": "[Mount]\nOptions=rw\n",
    "etc/systemd/system/service.d/all.conf": "[Service]\nEnvironment=LD_PRELOAD=/x.so\n",
    "usr/local/bin/jq": "#!/bin/sh\necho '{\"format\": 1}'\n",
    "usr/bin/pmem-flush-test": "#!/bin/sh\necho ok\n",
    "etc/ld.so.preload": "/usr/local/lib/fake.so\n",
    "etc/systemd/system.conf.d/env.conf": "[Manager]\nDefaultEnvironment=PATH=/fake\n",
    "etc/fstab": "/dev/pmem0 /mnt/pmem0 ext4 rw 0 0\n",
    "usr/lib/pmem-image/pmem-selftest": "#!/bin/sh\n",
}


def tree_profile(tmp_path: Path, files: dict[str, str], links: dict[str, str] | None = None, trees: int = 1) -> str:
    for index in range(trees):
        (tmp_path / f"tree{index}").mkdir(exist_ok=True)
    for relative, content in files.items():
        path = tmp_path / "tree0" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for relative, target in (links or {}).items():
        index, _, inside = relative.partition(":")
        path = tmp_path / f"tree{index}" / inside
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    return BASE + f"extra_trees: [{', '.join(f'tree{i}' for i in range(trees))}]\n"


@pytest.mark.hostile
@pytest.mark.parametrize("relative", sorted(HOSTILE))
def test_a_tree_that_writes_what_the_proof_is_made_of_is_bad_input(tmp_path, relative):
    text = tree_profile(tmp_path, {relative: HOSTILE[relative]})
    with pytest.raises(ProfileError) as error:
        plan_of_text(text, str(tmp_path / "p.yaml"))
    assert f"tree0/{relative}: an extra tree may not write /{relative}" in str(error.value)
    assert error.value.exit_code == 2


@pytest.mark.hostile
def test_masking_the_self_test_with_a_link_is_refused(tmp_path):
    text = tree_profile(tmp_path, {}, {"0:etc/systemd/system/pmem-selftest.service": "/dev/null"})
    with pytest.raises(ProfileError, match="mask pmem-selftest.service"):
        plan_of_text(text, str(tmp_path / "p.yaml"))


@pytest.mark.hostile
def test_a_link_where_pmem_image_has_a_directory_is_bad_input_not_a_crash(tmp_path):
    text = tree_profile(tmp_path, {}, {"0:usr/lib/systemd/system": "/etc"})
    with pytest.raises(ProfileError, match="is a link where the image has pmem-image's directory /usr/lib/systemd/system"):
        plan_of_text(text, str(tmp_path / "p.yaml"))


@pytest.mark.hostile
def test_two_trees_that_disagree_on_a_directory_are_bad_input(tmp_path):
    text = tree_profile(tmp_path, {"opt/lab/readme": "x\n"}, {"1:opt/lab": "/srv"}, trees=2)
    with pytest.raises(ProfileError, match=r"tree1/opt/lab is not a directory but extra_trees\[0\] has a directory"):
        plan_of_text(text, str(tmp_path / "p.yaml"))


def test_ordinary_additions_are_fine(tmp_path):
    text = tree_profile(tmp_path, {"etc/motd": "welcome\n", "etc/systemd/system/lab.service": "[Service]\n",
                                   "usr/local/bin/lab-tool": "#!/bin/sh\n", "etc/pmem-lab/notes": "x\n"})
    assert plan_of_text(text, str(tmp_path / "p.yaml"))[0].extra_tree_paths == [str(tmp_path / "tree0")]


@pytest.mark.parametrize("name", ["default", "pmdk-dev", "nvdimm-lab", "templates"])
def test_every_file_pmem_image_puts_in_the_image_is_protected(name):
    """The rules and the renderer agree: nothing rendered into mkosi.extra is left writable by a tree."""
    plan = plan_of_file(PROFILES / f"{name}.yaml")[0]
    mountpoints = tuple(r.mountpoint for r in plan.regions if r.mountpoint)
    extra = [PurePosixPath(p).relative_to("mkosi.extra") for p in render(plan) if p.startswith("mkosi.extra/")]
    assert extra and [p for p in extra if protected_reason(p, mountpoints) is None] == []
