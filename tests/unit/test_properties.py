"""Random profiles either plan or raise the project's own ProfileError, never anything else."""

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from builder.profile.errors import ProfileError
from builder.render.outputs import render
from conftest import plan_of_text

sizes = st.one_of(st.sampled_from(["0", "128M", "512M", "1G", "2G", "4G", "5G", "100M", "1T", "7"]),
                  st.integers(-5, 10**13), st.text(max_size=6), st.none())
words = st.one_of(st.text(max_size=12), st.sampled_from(["ext4", "xfs", "none", "auto", "always", "legacy", "debian",
                                                         "bookworm", "q35", "pc", "bios", "uefi", "/mnt/p", "quiet"]))
region = st.dictionaries(st.sampled_from(["size", "offset", "memmap", "filesystem", "mountpoint", "dax", "bogus"]),
                         st.one_of(sizes, words), max_size=5)
profile = st.fixed_dictionaries(
    {"name": st.one_of(st.just("p"), words),
     "distribution": st.fixed_dictionaries({"name": st.sampled_from(["debian", "ubuntu", "fedora", "centos", "x"]),
                                            "release": st.sampled_from(["bookworm", "buster", "noble", "41", "9", "zz"])}),
     "pmem": st.lists(region, max_size=6)},
    optional={"vm": st.dictionaries(st.sampled_from(["memory", "cpus", "machine", "firmware"]), st.one_of(sizes, words,
                                                                                                           st.integers())),
              "kernel": st.dictionaries(st.sampled_from(["source", "version", "cmdline", "fragments"]),
                                        st.one_of(words, st.lists(words, max_size=3))),
              "description": words})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile)
def test_random_profiles_plan_or_raise_profile_error(data):
    text = yaml.safe_dump(data)
    try:
        plan, _ = plan_of_text(text)
    except ProfileError as error:
        assert error.problems and all(p.message for p in error.problems)
        return
    render(plan)  # whatever validates must render (the escaping never trips on a valid plan)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text):
    try:
        plan_of_text(text)
    except ProfileError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile)
def test_profiles_with_aliases_are_bad_input(data):
    """The same object twice makes yaml.safe_dump write an anchor and an alias: always a ProfileError."""
    shared = data["pmem"][0] if data["pmem"] else {"size": "1G", "offset": "4G"}
    text = yaml.safe_dump({**data, "pmem": [shared, shared]})
    assert "*id" in text
    try:
        plan_of_text(text)
    except ProfileError as error:
        assert any("aliases" in p.message for p in error.problems)
    else:
        raise AssertionError("a profile with an alias planned")


def test_recursive_alias_and_alias_bomb_are_bad_input_at_once():
    import time
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    for text in ("name: &n [*n]\n", bomb):
        started = time.monotonic()
        with pytest.raises(ProfileError) as caught:
            plan_of_text(text)
        assert any("aliases" in p.message for p in caught.value.problems)
        assert time.monotonic() - started < 1
