import pytest

from builder.profile.sizes import GIB, MIB, format_size, human_size, parse_size


@pytest.mark.parametrize("text, value", [("1G", GIB), ("512M", 512 * MIB), ("4k", 4096), ("2T", 2 * 1024 * GIB),
                                         ("0", 0), (0, 0), ("1536M", 1536 * MIB)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text, message", [("1024", "has no unit"), ("1 gig", "is not a size"), ("-1G", "is not a size"),
                                           ("1.5G", "is not a size"), (True, "expected a size"), ([1], "expected a size"),
                                           ("9999999T", "larger than")])
def test_parse_size_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_size(text)


@pytest.mark.parametrize("value, text", [(GIB, "1G"), (1536 * MIB, "1536M"), (4 * GIB, "4G"), (0, "0"),
                                         (4096 + 1024, "5K")])
def test_format_size_round_trips_exactly(value, text):
    assert format_size(value) == text
    assert parse_size(text) == value


def test_format_size_of_a_unitless_value_is_not_a_profile_size():
    """1000 bytes has no exact unit: it is shown as 1000, which a profile may not say (no unit)."""
    assert format_size(1000) == "1000"
    with pytest.raises(ValueError, match="has no unit"):
        parse_size(format_size(1000))


def test_human_size():
    assert human_size(GIB + GIB // 2) == "1.50 GiB"
    assert human_size(16 * MIB) == "16 MiB"
    assert human_size(12) == "12 B"
