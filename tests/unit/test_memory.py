from builder.knowledge.memory import FOUR_GIB, memory_map, pmem_windows, ram_below_4g, ram_spans, Span
from builder.profile.sizes import GIB, MIB


def test_q35_moves_ram_above_2g_once_it_reaches_2_75g():
    assert ram_below_4g(2816 * MIB - 1, "q35") == 2816 * MIB - 1
    assert ram_below_4g(2816 * MIB, "q35") == 2 * GIB
    assert ram_spans(4 * GIB, "q35") == [Span(0, 2 * GIB, "ram", "low RAM"), Span(FOUR_GIB, 6 * GIB, "ram", "high RAM")]


def test_pc_moves_ram_above_3g_once_it_reaches_3_5g():
    assert ram_below_4g(3 * GIB, "pc") == 3 * GIB
    assert ram_below_4g(3584 * MIB, "pc") == 3 * GIB
    assert ram_spans(3584 * MIB, "pc")[1] == Span(FOUR_GIB, FOUR_GIB + 512 * MIB, "ram", "high RAM")


def test_small_vm_keeps_all_ram_low():
    assert ram_spans(2 * GIB, "q35") == [Span(0, 2 * GIB, "ram", "low RAM")]


def test_windows_keep_clear_of_the_first_16m_and_the_top_of_low_ram():
    windows = pmem_windows(2 * GIB, "q35")
    assert windows == [Span(16 * MIB, 2 * GIB - 256 * MIB, "ram", "low RAM")]


def test_memory_map_covers_everything_in_order():
    spans = memory_map(4 * GIB, "q35", [Span(FOUR_GIB, 5 * GIB, "pmem", "/dev/pmem0")])
    assert spans[0].start == 0 and spans[-1].end == 6 * GIB
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
    assert [s.kind for s in spans] == ["reserved", "ram", "reserved", "hole", "pmem", "ram"]
