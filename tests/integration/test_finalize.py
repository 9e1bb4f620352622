"""The rendered mkosi.finalize, run for real on small trees laid out as each distribution's kernel package
lays them out, and the build's kernel check on what it handed over."""

import subprocess
from pathlib import Path

import pytest

from builder.build.mkosi import check_image_kernel, release_order
from builder.render.outputs import render
from conftest import PROFILES, plan_of_file

pytestmark = pytest.mark.integration


def _finalize(tmp_path: Path, profile: str, layout: dict[str, str]) -> tuple[Path, object]:
    """Run the profile's mkosi.finalize over a BUILDROOT holding `layout` (path -> content)."""
    plan, _ = plan_of_file(PROFILES / f"{profile}.yaml")
    script = tmp_path / "mkosi.finalize"
    script.write_text(render(plan)["mkosi.finalize"].content)
    root, out = tmp_path / "root", tmp_path / "out"
    for path, content in layout.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    out.mkdir()
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True,
                            env={"BUILDROOT": str(root), "OUTPUTDIR": str(out), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return out, plan


def _config(plan, extra: str = "") -> str:
    return "".join(f"CONFIG_{symbol}=y\n" for symbol in plan.kernel_options) + extra


def test_an_rpm_kernel_is_checked_from_usr_lib_modules(tmp_path: Path):
    """kernel-core ships /usr/lib/modules/R/config, and /boot/config-R only as a file kernel-install makes
    (mkosi bypasses it): the kernel check must find the real one."""
    plan, _ = plan_of_file(PROFILES / "centos-stream9.yaml")
    release = "5.14.0-570.el9.x86_64"
    out, plan = _finalize(tmp_path, "centos-stream9", {f"usr/lib/modules/{release}/config": _config(plan),
                                                       f"usr/lib/modules/{release}/vmlinuz": "kernel",
                                                       "boot/.keep": ""})
    assert sorted(p.name for p in out.glob("kernel-config-*")) == [f"kernel-config-{release}"]
    assert check_image_kernel(plan, out, None) == release


def test_the_newest_debian_kernel_is_the_one_checked(tmp_path: Path):
    """/boot/config-6.1.0-10-amd64 beside 6.1.0-9: by version, 10 is newer (by text, 9 would win)."""
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    layout = {}
    for release, extra in (("6.1.0-9-amd64", "# nine\n"), ("6.1.0-10-amd64", "# ten\n")):
        layout[f"boot/config-{release}"] = _config(plan, extra)
        layout[f"usr/lib/modules/{release}/modules.dep"] = ""
    out, plan = _finalize(tmp_path, "default", layout)
    assert check_image_kernel(plan, out, None) == "6.1.0-10-amd64"
    assert "# ten" in (out / "kernel.config").read_text()
    assert (tmp_path / "root/usr/lib/modules/6.1.0-10-amd64/config").is_file()   # kept for the boot proof


def test_a_kernel_without_a_config_is_named_as_such(tmp_path: Path):
    out, plan = _finalize(tmp_path, "default", {"usr/lib/modules/6.1.0-9-amd64/modules.dep": ""})
    with pytest.raises(Exception, match="no kernel config"):
        check_image_kernel(plan, out, None)


def test_release_order_reads_numbers_as_numbers():
    releases = ["6.1.0-10-amd64", "6.1.0-9-amd64", "6.12.1", "6.2.0", "5.14.0-570.el9.x86_64"]
    assert sorted(releases, key=release_order) == ["5.14.0-570.el9.x86_64", "6.1.0-9-amd64", "6.1.0-10-amd64",
                                                   "6.2.0", "6.12.1"]
