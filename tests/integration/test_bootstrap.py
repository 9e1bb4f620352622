"""The build host is left as it was: checks that never run apt, and a clean stop on an unsupported host."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import PROFILES, ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def apt_spy(tmp_path: Path) -> dict:
    """apt-get, apt and dpkg-query on PATH that only record that they were called (dpkg-query then reports
    nothing installed, so a bootstrap that looked at packages would go on to apt-get)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("apt-get", "apt", "dpkg-query"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho \"$0 $*\" >> {tmp_path}/apt-calls\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_CALLS": str(tmp_path / "apt-calls")}


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["render", "-o", "TREE"], ["schema"]])
def test_commands_that_build_nothing_never_run_apt(apt_spy, tmp_path, command):
    argv = [a.replace("TREE", str(tmp_path / "tree")) for a in command]
    if command[0] != "schema":
        argv.insert(1, str(PROFILES / "default.yaml"))
    result = subprocess.run([str(ROOT / "pmem-image"), *argv], capture_output=True, text=True, env=apt_spy)
    assert result.returncode == 0, result.stderr
    assert not Path(apt_spy["APT_CALLS"]).exists()


def test_bootstrap_on_an_unsupported_host_stops_before_changing_anything(apt_spy, tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n')
    result = subprocess.run([str(ROOT / "scripts" / "bootstrap")], capture_output=True, text=True,
                            env={**apt_spy, "PMEM_IMAGE_OS_RELEASE": str(release)})
    assert result.returncode != 0 and "Debian 12 (bookworm) hosts only" in result.stderr
    assert "Nothing was installed" in result.stderr and not Path(apt_spy["APT_CALLS"]).exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="bootstrap installs only as root")
def test_bootstrap_refuses_a_plan_that_would_upgrade_the_hosts_systemd(tmp_path):
    """apt's simulation says installing would upgrade systemd (as mkosi's own package would, to >= 254):
    bootstrap stops with the package named, and apt-get never installs anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-calls"
    (bin_dir / "apt-get").write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {calls}\n"
        "case \"$*\" in *' -s '*) echo 'Inst systemd [252.39-1~deb12u2] (254.26-1~bpo12+1 Debian Backports:"
        "bookworm-backports [amd64])'; echo 'Inst qemu-utils (1:10.0.2 Debian Backports [amd64])' ;; esac\n"
        "exit 0\n")
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")      # nothing installed: bootstrap goes to apt
    for tool in ("apt-get", "dpkg-query"):
        (bin_dir / tool).chmod(0o755)
    result = subprocess.run([str(ROOT / "scripts" / "bootstrap")], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode != 0 and "would upgrade the host's systemd" in result.stderr, result.stderr
    assert all(" -s " in line or line.startswith("update") for line in calls.read_text().splitlines())


def test_bootstrap_never_installs_mkosi_or_systemd_from_backports():
    """Only QEMU comes from bookworm-backports; mkosi 24.3 (whose package depends on systemd >= 254) and the
    newer systemd and e2fsprogs tools are unpacked into .tools/, never installed with apt."""
    text = (ROOT / "scripts" / "bootstrap").read_text()
    backports = text.split("BACKPORTS_PACKAGES=(", 1)[1].split(")", 1)[0].split()
    main = text.split("MAIN_PACKAGES=(", 1)[1].split("\n  docker-registry)", 1)[0].split()
    assert backports == ["qemu-system-x86", "qemu-utils"]
    assert not {"mkosi", "systemd", "systemd-container", "systemd-boot", "e2fsprogs"} & set(main)
