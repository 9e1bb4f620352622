"""tests/profiles/valid/*.yaml validate; each invalid/*.yaml gives the errors its '# expect:' lines name."""

from pathlib import Path

import pytest

from builder.cli.views import plan_text
from builder.profile.errors import ProfileError
from conftest import FIXTURES, PROFILES, expectations, plan_of_file

VALID = sorted((FIXTURES / "valid").glob("*.yaml")) + sorted(PROFILES.glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_profiles_plan(path: Path):
    plan, _ = plan_of_file(path)
    assert plan.regions
    if plan.pmem_backend == "memmap":
        assert all(f"memmap={r.memmap}" in plan.kernel_cmdline for r in plan.regions)
    else:   # NVDIMMs are described by the firmware, virtio-pmem and CXL devices found on PCI, not on the command line
        assert not any(a.startswith("memmap=") for a in plan.kernel_cmdline)
        assert all(bool(r.label_size) == (plan.pmem_backend in ("nvdimm", "cxl")) for r in plan.regions)
    # Each valid fixture says what its plan must show ('# expect:' lines against `pmem-image plan`).
    shown = plan_text(plan, str(path))
    wanted = expectations(path)
    assert wanted or path.parent == PROFILES, f"{path.name} has no '# expect:' lines"
    for expected in wanted:
        assert expected in shown, f"missing {expected!r} in:\n{shown}"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_profiles_report_every_expected_error(path: Path):
    wanted = expectations(path)
    assert wanted, f"{path.name} has no '# expect:' lines"
    with pytest.raises(ProfileError) as caught:
        plan_of_file(path)
    text = caught.value.format()
    for expected in wanted:
        assert expected in text, f"missing {expected!r} in:\n{text}"
    assert all(line.startswith(str(path)) for line in text.splitlines() if not line.startswith("  hint:"))
