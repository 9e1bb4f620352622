"""`pmem-image run` of an NVDIMM lab puts its backing files in the instance state (OUT/.state/NAME/pmem-LAYOUT/)
and its session file (pid, port, key) in OUT/.state/NAME/run/state.json, and the two never mix: the boot tier
found the NVDIMM files made inside a directory named state.json, after which run failed on every boot."""

import json

from builder.runner import Runner
from builder.verify import session
from conftest import PROFILES, plan_of_file


def test_run_keeps_the_nvdimm_files_in_the_layouts_state_and_its_session_file_beside_the_overlay(tmp_path,
                                                                                                 monkeypatch):
    plan = plan_of_file(PROFILES / "nvdimm-lab.yaml")[0]
    directory = tmp_path / "out" / plan.name
    directory.mkdir(parents=True)
    (directory / f"{plan.name}.raw").write_bytes(b"\0" * 4096)
    seen = {}

    def boot(runner, argv):                       # instead of QEMU on this terminal
        seen["argv"] = argv
        seen["session"] = json.loads((tmp_path / "out" / ".state" / plan.name / "run" / "state.json").read_text())
        return 0
    monkeypatch.setattr(Runner, "interactive", boot)
    assert session.run(plan, directory, Runner(), accel="tcg") == 0
    layouts = list((tmp_path / "out" / ".state" / plan.name).glob("pmem-*"))
    assert len(layouts) == 1 and sorted(p.name for p in layouts[0].iterdir()) == ["nvdimm0.img", "nvdimm1.img"]
    assert any(str(layouts[0] / "nvdimm0.img") in arg for arg in seen["argv"])
    assert seen["session"]["pid"] and seen["session"]["user"] == "dev"
    run = tmp_path / "out" / ".state" / plan.name / "run"
    assert not (run / "state.json").exists()         # gone with the boot, and never a directory
    assert not any(path.suffix == ".img" for path in run.rglob("*"))
