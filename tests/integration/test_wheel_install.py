"""A normal (non-editable) install finds its package data: kernel fragments, templates, the C source."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import PROFILES, ROOT

pytestmark = pytest.mark.integration


def test_pip_install_dot_plans_with_the_kernel_options(tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "builder", "kernel-fragments"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, source / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (ROOT / part).is_dir() else {}))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # pydantic, jinja2 and PyYAML come from the test environment, so only our package is installed here.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(source)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    shutil.rmtree(source)   # nothing may be read from the source tree any more
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import builder; print(builder.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(site))
    plan = subprocess.run([str(venv / "bin" / "pmem-image"), "plan", str(PROFILES / "default.yaml")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "pmem-legacy pmem-pfn-dax pmem" in plan.stdout and "X86_PMEM_LEGACY=y" in plan.stdout
    assert "ZONE_DEVICE=y" in plan.stdout
    rendered = subprocess.run([str(venv / "bin" / "pmem-image"), "render", str(PROFILES / "default.yaml"),
                               "-o", str(tmp_path / "tree")], capture_output=True, text=True, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "tree" / "src" / "pmem-flush-test.c").stat().st_size > 1000
