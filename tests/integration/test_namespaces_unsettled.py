"""The rendered pmem-namespaces on an NVDIMM region whose labelled namespace never settles (review M4): run
for real in a private mount namespace whose /sys/bus/nd/devices is a made-up tree (one ACPI.NFIT region,
one labelled namespace that no driver binds), with ndctl, sleep and udevadm stood in for. It must leave
the namespace alone (no init-labels, no reconfiguration, no region disabled), say so, record "unsettled"
and fail, so the proof fails the region instead of a forced reconfiguration wiping the lab's data."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from builder.render.outputs import render
from conftest import plan_of_text

pytestmark = [pytest.mark.integration, pytest.mark.faults,
              pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root")]
LAB = """name: lab
distribution: {name: debian, release: trixie}
vm: {memory: 2G}
pmem_backend: nvdimm
pmem:
  - {size: 1G, label_size: 128K, mode: fsdax, filesystem: ext4, mountpoint: /mnt/pmem0}
"""
NDCTL = """#!/bin/sh
echo "$*" >> "$STUB_LOG"
[ "$1" = list ] && echo '{"dev":"namespace0.0","mode":"fsdax","map":"mem"}'
exit 0
"""


def fake_sysfs(root: Path) -> None:
    """/sys/bus/nd/devices as the kernel lays it out: links into the bus's device tree."""
    region = root / "ndbus0" / "region0"
    namespace = region / "namespace0.0"
    namespace.mkdir(parents=True)
    (root / "ndbus0" / "provider").write_text("ACPI.NFIT\n")
    (region / "driver").mkdir()
    (region / "resource").write_text("0x140000000\n")
    (region / "mapping0").write_text("nmem0,0,1073741824,0\n")
    (namespace / "uuid").write_text("8a3fbd1c-2b6e-4d1f-9a55-0c1d2e3f4a5b\n")
    (namespace / "size").write_text("1073610752\n")
    (namespace / "holder").write_text("\n")                 # no pfn/dax/btt claims it, no driver bound
    (root / "region0").symlink_to("ndbus0/region0")
    (root / "namespace0.0").symlink_to("ndbus0/region0/namespace0.0")


def test_an_unsettled_labelled_namespace_is_left_alone_and_fails_the_region(tmp_path):
    plan = plan_of_text(LAB)[0]
    script = tmp_path / "pmem-namespaces"
    script.write_text(render(plan)["mkosi.extra/usr/lib/pmem-image/pmem-namespaces"].content)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (("ndctl", NDCTL), ("sleep", "#!/bin/sh\nexit 0\n"), ("udevadm", "#!/bin/sh\nexit 0\n")):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    sysfs, run = tmp_path / "sysfs", tmp_path / "run"
    fake_sysfs(sysfs)
    run.mkdir()
    log = tmp_path / "ndctl.log"
    inside = (f"mount --bind {sysfs} /sys/bus/nd/devices && mount --bind {run} /run && "
              f"PATH={stubs}:$PATH STUB_LOG={log} sh {script}; status=$?; cat /run/pmem-image/namespaces.json; "
              "exit $status")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inside],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "namespace0.0 in region0 did not settle in 30 s; left as it is (not reconfigured)" in result.stdout
    report = json.loads(result.stdout[result.stdout.index("["):])
    assert [(r["device"], r["namespace"], r["action"]) for r in report] == [("pmem0", "namespace0.0", "unsettled")]
    calls = log.read_text() if log.exists() else ""
    for destructive in ("create-namespace", "init-labels", "disable-region", "disable-namespace"):
        assert destructive not in calls, calls
