"""Fragments against a real kernel tree (Debian's linux-source-6.1): kconfig keeps every option the
shipped fragments ask for, and the survival check names what a naive fragment loses and why."""

import subprocess
from pathlib import Path

import pytest

from builder.knowledge.kconfig import index_kconfig, lost_options, parse_dotconfig, parse_fragment
from builder.build.kernel import check_survival, configure, makefile_version
from builder.runner import Runner
from conftest import PROFILES, plan_of_file

pytestmark = pytest.mark.integration
TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")   # scripts/bootstrap installs linux-source-6.1


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    assert TARBALL.exists(), "linux-source-6.1 is missing: run scripts/bootstrap"
    root = tmp_path_factory.mktemp("linux")
    subprocess.run(["tar", "-C", str(root), "-xf", str(TARBALL)], check=True)
    return root / "linux-source-6.1"


def test_makefile_version(tree):
    assert makefile_version(tree)[:2] == (6, 1)


def test_shipped_fragments_survive_tinyconfig(tree, tmp_path):
    plan, _ = plan_of_file(PROFILES / "debian-source-6.1.yaml")
    config = configure(plan, tree, tmp_path / "build", Runner(), tmp_path / "log")
    check_survival(plan, tree, config)      # raises with the lost options otherwise
    values = parse_dotconfig(config)
    assert values["ZONE_DEVICE"] == values["FS_DAX"] == values["X86_PMEM_LEGACY"] == values["64BIT"] == "y"


def test_naive_fragment_loses_dax_and_says_why(tree, tmp_path):
    """The feasibility record's trap: ZONE_DEVICE/FS_DAX without memory hotplug silently vanish."""
    plan, _ = plan_of_file(PROFILES / "debian-source-6.1.yaml")
    naive = parse_fragment("naive", "# kernels: >=4.2\n# applies: named\nCONFIG_LIBNVDIMM=y\nCONFIG_BLK_DEV_PMEM=y\n"
                           "CONFIG_X86_PMEM_LEGACY=y\nCONFIG_ZONE_DEVICE=y\nCONFIG_FS_DAX=y\nCONFIG_ND_BLK=y\n")
    naive_plan = plan.model_copy(update={"kernel_fragments": ["naive"], "kernel_options": dict(naive.options)})
    final = parse_dotconfig(configure(naive_plan, tree, tmp_path / "build", Runner(), tmp_path / "log"))
    # what the pmem fragments would have added, missing here:
    assert final.get("MEMORY_HOTPLUG", "n") == "n"
    index = index_kconfig({str(p): p.read_text(errors="replace") for p in tree.rglob("Kconfig*") if p.is_file()})
    lost = {l.symbol: l.why for l in lost_options(dict(naive.options), final, index)}
    assert "dependencies are off: MEMORY_HOTPLUG, MEMORY_HOTREMOVE" in lost["ZONE_DEVICE"]
    assert "no such symbol" in lost["ND_BLK"]
    assert "FS_DAX" in lost
