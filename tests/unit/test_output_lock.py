"""verify and run hold their output's lock shared, build, export and clean exclusively (review L11): a build
cannot swap out/NAME away under a booted image, and a verify does not boot an output being replaced."""

import pytest

from builder.build.locks import BuildLock, BuildLocked
from builder.runner import Runner
from builder.verify import boot
from conftest import PROFILES, plan_of_file


def test_verifies_share_and_a_build_waits_for_none_of_them(tmp_path):
    with BuildLock(tmp_path, "default", shared=True), BuildLock(tmp_path, "default", shared=True):
        with pytest.raises(BuildLocked, match="a verify or run of it, is going"):
            with BuildLock(tmp_path, "default"):
                pass
    with BuildLock(tmp_path, "default"):         # both verifies ended: the build goes
        pass


def test_verify_refuses_an_output_that_is_being_built(tmp_path):
    plan = plan_of_file(PROFILES / "default.yaml")[0]
    (tmp_path / "default").mkdir()
    with BuildLock(tmp_path, "default"):
        with pytest.raises(BuildLocked, match="default is being built or replaced right now") as error:
            boot.verify(plan, tmp_path / "default", Runner(dry_run=True))
    assert "when that is done" in error.value.hint
