"""Fragments: parsing, resolution by kernel version and filesystem, and the survival check."""


import pytest

from builder.knowledge.kconfig import (FragmentError, KconfigSymbol, index_kconfig, load_fragments, lost_options,
                             options_text, parse_dotconfig, parse_fragment, required_options, resolve_fragments)
from conftest import ROOT

SHIPPED = load_fragments(ROOT / "kernel-fragments")
MEMMAP = "memmap"


def names(fragments):
    return [f.name for f in fragments]


def test_an_empty_fragment_directory_is_an_error(tmp_path):
    with pytest.raises(FragmentError, match="no kernel fragments"):
        load_fragments(tmp_path)


def test_every_shipped_fragment_parses_with_a_description():
    assert {"pmem", "pmem-pfn-dax", "nd-blk", "ext4", "xfs", "qemu-guest", "systemd", "proof"} <= set(SHIPPED)
    assert all(f.description and f.options for f in SHIPPED.values())


@pytest.mark.parametrize("version, fs, source, expected", [
    ((6, 1, 0), ["ext4"], False, ["ext4", "pmem-legacy", "pmem-pfn-dax", "pmem"]),
    ((6, 1, 0), ["xfs", "ext4"], False, ["ext4", "pmem-legacy", "pmem-pfn-dax", "pmem", "xfs"]),
    # ND_BLK (before 5.18) only for kernels pmem-image builds: no distribution kernel fails on it
    ((5, 17, 0), ["ext4"], False, ["ext4", "pmem-legacy", "pmem-pfn-dax", "pmem"]),
    ((5, 17, 0), ["none"], True, ["nd-blk", "pmem-legacy", "pmem-pfn-dax", "pmem", "proof", "qemu-guest", "systemd"]),
    ((4, 9, 0), ["xfs"], False, ["pmem-legacy", "pmem", "xfs"]),       # no pfn/devdax fragment yet
    ((6, 1, 0), ["none"], True, ["pmem-legacy", "pmem-pfn-dax", "pmem", "proof", "qemu-guest", "systemd"]),
])
def test_resolution_by_version_filesystem_and_source(version, fs, source, expected):
    assert names(resolve_fragments(SHIPPED, version, fs, [], source, MEMMAP)) == expected


def test_backend_fragments_apply_only_to_their_backend():
    assert "pmem-legacy" not in names(resolve_fragments(SHIPPED, (6, 1, 0), ["ext4"], [], False, "nvdimm"))


def test_named_fragments_come_last_and_once():
    chosen = resolve_fragments(SHIPPED, (6, 1, 0), ["ext4"], ["xfs", "pmem"], False, MEMMAP)
    assert names(chosen) == ["ext4", "pmem-legacy", "pmem-pfn-dax", "pmem", "xfs"]


def test_zone_device_and_x86_pmem_legacy_always_requested():
    for version in ((4, 2, 0), (5, 4, 0), (6, 12, 0)):
        options = required_options(resolve_fragments(SHIPPED, version, ["ext4"], [], False, MEMMAP))
        assert options["ZONE_DEVICE"] == "y" and options["X86_PMEM_LEGACY"] == "y" and options["FS_DAX"] == "y"


@pytest.mark.parametrize("text, message", [
    ("CONFIG_A=y\n", "needs '# kernels"),
    ("# kernels: >=4.2\n# applies: sometimes\n", "applies 'sometimes'"),
    ("# kernels: 4.2\n# applies: always\n", "kernel bound '4.2'"),
    ("# kernels: >=4.2\n# applies: always\nA=y\n", "is not a CONFIG_ line"),
])
def test_bad_fragments_are_named(text, message):
    with pytest.raises(FragmentError, match=message):
        parse_fragment("bad", text)


def test_fragment_text_round_trips_through_dotconfig():
    fragment = parse_fragment("x", "# kernels: >=4.2\n# applies: named\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n")
    assert parse_dotconfig(options_text(required_options([fragment]))) == {"A": "y", "B": "n", "C": "m"}


INDEX = index_kconfig({"mm/Kconfig": """
config ZONE_DEVICE
\tbool "Device memory (pmem, HMM, etc...) hotplug support"
\tdepends on MEMORY_HOTPLUG
\tdepends on MEMORY_HOTREMOVE
\tdepends on SPARSEMEM_VMEMMAP

config FS_DAX_PMD
\tbool
\tdefault FS_DAX
\tdepends on FS_DAX

menuconfig LIBNVDIMM
\ttristate "NVDIMM support"
if LIBNVDIMM
config BTT
\tbool "BTT"
endif
"""})


def test_index_reads_types_prompts_and_dependencies():
    assert INDEX["ZONE_DEVICE"] == KconfigSymbol("ZONE_DEVICE", "bool", True,
                                                 ["MEMORY_HOTPLUG", "MEMORY_HOTREMOVE", "SPARSEMEM_VMEMMAP"],
                                                 ["mm/Kconfig"])
    assert INDEX["FS_DAX_PMD"].has_prompt is False and INDEX["LIBNVDIMM"].kind == "tristate"


def test_lost_options_say_why():
    config = {"MEMORY_HOTPLUG": "y", "SPARSEMEM_VMEMMAP": "y", "FS_DAX": "y", "LIBNVDIMM": "m", "BTT": "y"}
    lost = {l.symbol: l for l in lost_options({"ZONE_DEVICE": "y", "FS_DAX_PMD": "y", "ND_BLK": "y",
                                               "LIBNVDIMM": "y", "BTT": "y"}, config, INDEX)}
    assert set(lost) == {"ZONE_DEVICE", "FS_DAX_PMD", "ND_BLK", "LIBNVDIMM"}
    assert "dependencies are off: MEMORY_HOTREMOVE" in lost["ZONE_DEVICE"].why
    assert "no prompt" in lost["FS_DAX_PMD"].why
    assert "no such symbol" in lost["ND_BLK"].why
    assert lost["LIBNVDIMM"].format() == "CONFIG_LIBNVDIMM: wanted y, got m: dropped by kconfig (depends on nothing)"


def test_modules_satisfy_y_for_distro_kernels():
    assert lost_options({"LIBNVDIMM": "y", "FS_DAX": "y"}, {"LIBNVDIMM": "m", "FS_DAX": "y"}, modules_ok=True) == []
    assert [l.symbol for l in lost_options({"FS_DAX": "y"}, {"FS_DAX": "m"} | {}, modules_ok=False)] == ["FS_DAX"]
