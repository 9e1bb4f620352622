"""$PMEM_IMAGE_BUILD_LOCK: builds given the same lock file take turns, whatever their caches (two releases
share none, and without the lock they overlap: test_build_safety.py), and a build that waits has put nothing
into out/ yet; a verify or run never takes it."""

import fcntl
from pathlib import Path

from builder.build.locks import hold_log
from test_build_safety import build, finish, two_slow_builds


def test_builds_given_one_lock_file_take_turns_and_say_so(env, tmp_path):
    env["PMEM_IMAGE_BUILD_LOCK"] = str(tmp_path / "machine.lock")
    spans, text = two_slow_builds(env, tmp_path, "trixie")
    assert spans[0][1] <= spans[1][0], f"mkosi runs overlapped under one build lock: {spans}"
    assert f"waiting for the build lock {tmp_path / 'machine.lock'} (pid " in text


def test_a_build_waiting_for_the_lock_has_no_staging_directory_and_goes_on_when_it_is_free(env, tmp_path):
    lock = tmp_path / "machine.lock"
    env["PMEM_IMAGE_BUILD_LOCK"] = str(lock)
    out = Path(env["PMEM_IMAGE_OUT"])
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)          # as another process's build holds it
        waiting = build(env)
        line = waiting.stderr.readline() if waiting.stderr else ""
        while "waiting for the build lock" not in line and line:
            line = waiting.stderr.readline()
        assert "waiting for the build lock" in line
        assert list(out.glob(".staging-*")) == [] and not (out / "default").exists()
    code, text = finish(waiting)
    assert code == 0 and (out / "default" / "manifest.json").exists(), text


def test_each_hold_is_logged_beside_the_lock_with_what_it_built_and_how_long_it_waited_and_held(env, tmp_path):
    """The log CI prints (tests/conftest.py): one JSON line per hold, the waiting build's wait included."""
    import json
    env["PMEM_IMAGE_BUILD_LOCK"] = str(tmp_path / "machine.lock")
    spans, text = two_slow_builds(env, tmp_path, "trixie")
    holds = [json.loads(line) for line in hold_log(tmp_path / "machine.lock").read_text().splitlines()]
    assert len(holds) == 2 and {h["what"] for h in holds} == {"default", "other"}, holds
    first, second = sorted(holds, key=lambda h: h["waited"])
    # the second build waited about as long as the first held the lock (both mkosi runs are slow stand-ins)
    assert second["waited"] >= first["held"] - 1.5 and first["held"] > 0, holds
    assert "build lock: waited" in text and "s, held " in text


def test_the_hold_log_is_not_followed_through_a_symlink(tmp_path):
    """Whoever could plant a link at LOCK.log does not get root's append to its target."""
    from builder.build.locks import MachineBuildLock
    target = tmp_path / "target"
    target.write_text("untouched\n")
    hold_log(tmp_path / "machine.lock").symlink_to(target)
    said = []
    with MachineBuildLock(tmp_path / "machine.lock", said.append, "default"):
        pass
    assert target.read_text() == "untouched\n" and said and said[-1].startswith("build lock: waited 0s, held 0s")
