"""verify --state on a lab's own NVDIMM files refuses plans with device DAX (review M5): the devdax rows
write a pattern at the start of the device, which on those files is the lab's data."""

import pytest

from builder.profile.errors import UsageError
from builder.runner import Runner
from builder.verify import boot
from conftest import PROFILES, plan_of_file


def test_state_with_a_devdax_region_is_refused_before_anything_boots(tmp_path):
    plan = plan_of_file(PROFILES / "nvdimm-lab.yaml")[0]
    (tmp_path / plan.name).mkdir()
    (tmp_path / plan.name / f"{plan.name}.raw").write_bytes(b"disk")
    with pytest.raises(UsageError, match="would overwrite what the lab keeps there") as error:
        boot.verify(plan, tmp_path / plan.name, Runner(dry_run=True), state=tmp_path / "lab-state")
    assert "/dev/dax1.0" in error.value.message and "cp --sparse=always" in error.value.hint
    assert not (tmp_path / "lab-state").exists() and not (tmp_path / plan.name / "verify").exists()
