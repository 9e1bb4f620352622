"""Per-instance state outlives build outputs (review H3): an NVDIMM lab's backing files and the persistent
run overlay live in OUT/.state/NAME/, which no rebuild, --force or clean touches; state left in out/NAME/ by
an earlier version is moved aside, never deleted; deleting state takes clean --state and names what goes.
Builds are the stand-in mkosi's (seconds)."""

import subprocess
import sys
from pathlib import Path

from builder.render.launch import instance_state, libvirt_domain, pmem_state_dir
from conftest import CLI_WITHOUT_ROOT_CHECK, PROFILES, ROOT, plan_of_file, plan_of_text

LAB = PROFILES / "nvdimm-lab.yaml"


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def lab_env(env: dict, tmp_path: Path) -> dict:
    """The stand-in mkosi's kernel config with the options the nvdimm lab needs."""
    config = tmp_path / "lab-kernel.config"
    config.write_text("".join(f"CONFIG_{s}={v}\n" for s, v in plan_of_file(LAB)[0].kernel_options.items()))
    return {**env, "FAKE_KERNEL_CONFIG": str(config)}


def test_nvdimm_data_survives_rebuilds_force_and_clean(env, tmp_path):
    env = lab_env(env, tmp_path)
    out = Path(env["PMEM_IMAGE_OUT"])
    assert cli(env, "build", str(LAB)).returncode == 0
    data = pmem_state_dir(out, plan_of_file(LAB)[0]) / "nvdimm0.img"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"the lab's persistent data")            # as `pmem-image run` keeps it
    assert cli(env, "build", "--force", str(LAB)).returncode == 0
    changed = tmp_path / "nvdimm-lab.yaml"                      # a package added: same layout, new build key
    changed.write_text(LAB.read_text().replace("packages: [", "packages: [fio, ", 1)
                       if "packages: [" in LAB.read_text() else LAB.read_text() + "packages: [fio]\n")
    assert cli(env, "build", str(changed)).returncode == 0
    cleaned = cli(env, "clean", "nvdimm-lab")
    assert cleaned.returncode == 0 and "kept nvdimm-lab's instance state" in cleaned.stdout, cleaned.stdout
    assert data.read_bytes() == b"the lab's persistent data"
    removed = cli(env, "clean", "--state", "nvdimm-lab")
    assert removed.returncode == 0 and data.parent.name in removed.stdout and not data.exists()


def test_state_an_earlier_version_left_in_the_output_is_moved_aside(env, tmp_path):
    env = lab_env(env, tmp_path)
    out = Path(env["PMEM_IMAGE_OUT"])
    assert cli(env, "build", str(LAB)).returncode == 0
    legacy = out / "nvdimm-lab" / "state" / "nvdimm0.img"
    legacy.parent.mkdir()
    legacy.write_bytes(b"written by an older pmem-image run")
    rebuilt = cli(env, "build", "--force", str(LAB))
    assert rebuilt.returncode == 0 and "kept" in rebuilt.stderr and "aside" in rebuilt.stderr
    (rescued,) = instance_state(out, "nvdimm-lab").glob("rescued-state-*/nvdimm0.img")
    assert rescued.read_bytes() == b"written by an older pmem-image run"


def test_another_layout_gets_its_own_directory_and_the_domain_points_there(tmp_path):
    lab = plan_of_file(LAB)[0]
    bigger = plan_of_text(LAB.read_text().replace("size: 1G", "size: 2G", 1), str(LAB))[0]
    assert pmem_state_dir(tmp_path, lab) != pmem_state_dir(tmp_path, bigger)
    assert pmem_state_dir(tmp_path, lab).parent == instance_state(tmp_path, "nvdimm-lab")
    domain = libvirt_domain(lab, tmp_path / "nvdimm-lab" / "nvdimm-lab.raw")
    assert f"<path>{pmem_state_dir(tmp_path, lab) / 'nvdimm0.img'}</path>" in domain
