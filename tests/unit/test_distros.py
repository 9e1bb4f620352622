"""One record per distribution release: complete, consistent, and the only place that knows releases."""

import pytest

from builder.knowledge.distros import RELEASES, find_release, known_releases
from conftest import plan_of_text


@pytest.mark.parametrize("record", RELEASES, ids=lambda r: r.label)
def test_every_record_is_complete(record):
    assert record.module_suffix in (".ko", ".ko.xz", ".ko.zst")
    assert record.root_filesystem in ("ext4", "xfs", "btrfs")
    assert record.packages.base and record.packages.efi_bootloader and record.packages.build
    if record.distribution in ("debian", "ubuntu"):
        assert record.apt_suites[0] == record.release and record.apt_security_suite == f"{record.release}-security"


def test_unbuildable_releases_say_why_and_are_not_offered():
    buster = find_release("debian", "buster")
    assert buster.unsupported and "buster" not in known_releases("debian")
    assert known_releases("debian") == ["bullseye", "bookworm", "trixie"]


@pytest.mark.parametrize("distribution, release, suffix, root", [
    ("debian", "trixie", r"/nd_pmem\.ko\.xz$", "ext4"), ("ubuntu", "noble", r"/nd_pmem\.ko\.zst$", "ext4"),
    ("debian", "bookworm", r"/nd_pmem\.ko$", "ext4"), ("centos", "9", r"/nd_pmem\.ko\.xz$", "xfs")])
def test_the_record_reaches_the_rendered_initrd_list(distribution, release, suffix, root):
    from builder.render.outputs import render
    plan, _ = plan_of_text(f"name: t\ndistribution: {{name: {distribution}, release: \"{release}\"}}\n"
                           "pmem:\n  - {size: 1G, offset: 4G}\n")
    assert suffix in render(plan)["mkosi.conf"].content and plan.root_filesystem == root


def test_a_kernel_built_from_source_has_plain_ko_modules():
    plan, _ = plan_of_text("name: t\ndistribution: {name: debian, release: trixie}\nkernel: {source: debian-source, "
                           "version: \"6.12\"}\npmem:\n  - {size: 1G, offset: 4G}\n")
    assert plan.module_suffix == ".ko"
