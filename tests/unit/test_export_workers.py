"""export_all's two workers (a failing export stops the one still running and starts no other), and the
runner's answer to a tool that is not installed."""

import io
import time

import pytest

from builder.build import exports
from builder.runner import Runner
from conftest import PROFILES, plan_of_file


def test_a_failed_export_stops_the_other_worker_and_starts_nothing_else(tmp_path, monkeypatch):
    plan = plan_of_file(PROFILES / "default.yaml")[0].model_copy(update={"formats": ["gce", "qcow2", "vhd", "vhdx"]})
    started = []

    def fake_export(plan, raw, name, directory, runner):
        started.append(name)
        if name == "gce":
            runner.run(["sleep", "60"])         # the slow one, running in the other worker
        time.sleep(0.5)
        raise exports.ExportCheckFailed(f"{name}: broken", "")

    monkeypatch.setattr(exports, "export", fake_export)
    runner = Runner(out=io.StringIO())
    began = time.monotonic()
    with pytest.raises(exports.ExportCheckFailed, match="qcow2: broken"):
        exports.export_all(plan, tmp_path / "disk.raw", tmp_path, runner)
    assert time.monotonic() - began < 10, "the sleeping export was not stopped"
    assert sorted(started) == ["gce", "qcow2"] and not runner._live


def test_a_missing_tool_is_a_tool_failure_with_a_hint_not_a_traceback(tmp_path):
    from builder.profile.errors import EXIT_TOOL_FAILED, PmemImageError
    runner = Runner(out=io.StringIO())
    for call in (lambda: runner.run(["pmem-image-no-such-tool", "x"], log=tmp_path / "log"),
                 lambda: runner.capture(["pmem-image-no-such-tool"])):
        with pytest.raises(PmemImageError, match="pmem-image-no-such-tool is not installed") as caught:
            call()
        assert caught.value.exit_code == EXIT_TOOL_FAILED and "bootstrap" in caught.value.hint
