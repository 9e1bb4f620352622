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


def _os_release(tmp_path: Path, version: str) -> str:
    release = tmp_path / "os-release"
    release.write_text(f'PRETTY_NAME="Debian GNU/Linux {version}"\nID=debian\nVERSION_ID="{version}"\n')
    return str(release)


def test_bootstrap_on_an_unsupported_host_stops_before_changing_anything(apt_spy, tmp_path):
    result = subprocess.run([str(ROOT / "scripts" / "bootstrap")], capture_output=True, text=True,
                            env={**apt_spy, "PMEM_IMAGE_OS_RELEASE": _os_release(tmp_path, "11")})
    assert result.returncode != 0 and "Debian 12 (bookworm) and Debian 13" in result.stderr, result.stderr
    assert "Nothing was installed" in result.stderr and not Path(apt_spy["APT_CALLS"]).exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="bootstrap installs only as root")
def test_bootstrap_takes_a_debian_13_host(apt_spy, tmp_path):
    """A trixie host passes the host check and goes on to apt (the spy's apt-get update then fails)."""
    result = subprocess.run([str(ROOT / "scripts" / "bootstrap")], capture_output=True, text=True,
                            env={**apt_spy, "PMEM_IMAGE_OS_RELEASE": _os_release(tmp_path, "13")})
    assert result.returncode != 0 and "apt-get update failed" in result.stderr, result.stderr
    assert Path(apt_spy["APT_CALLS"]).read_text().splitlines()[-1].endswith("update -qq")


# apt-cache policy of a bookworm host that is now oldstable, with security and updates listed.
_POLICY = """Package files:
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
 500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages
     release v=12-updates,o=Debian,a=oldstable-updates,n=bookworm-updates,l=Debian,c=main,b=amd64
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
 100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
     release o=Debian Backports,a=oldstable-backports,n=bookworm-backports,l=Debian Backports,c=main,b=amd64
"""


def _bootstrap_with_simulated_apt(tmp_path: Path, simulation: str) -> tuple[subprocess.CompletedProcess, list]:
    """bootstrap on this (bookworm) host with apt-get, apt-cache and dpkg-query replaced: apt-get's simulation
    prints SIMULATION, everything else it is asked succeeds and is recorded; nothing is installed for real."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-calls"
    sim = tmp_path / "simulation"
    sim.write_text(simulation)
    (tmp_path / "policy").write_text(_POLICY)
    (bin_dir / "apt-get").write_text(
        f"#!/bin/sh\necho \"$*\" >> {calls}\ncase \"$*\" in *' -s '*) cat {sim} ;; esac\nexit 0\n")
    (bin_dir / "apt-cache").write_text(f"#!/bin/sh\ncat {tmp_path / 'policy'}\n")
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")      # nothing installed: bootstrap goes to apt
    for tool in ("apt-get", "apt-cache", "dpkg-query"):
        (bin_dir / tool).chmod(0o755)
    result = subprocess.run([str(ROOT / "scripts" / "bootstrap")], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                 "PMEM_IMAGE_OS_RELEASE": _os_release(tmp_path, "12")})
    return result, calls.read_text().splitlines()


@pytest.mark.skipif(os.geteuid() != 0, reason="bootstrap installs only as root")
def test_bootstrap_refuses_to_move_the_hosts_systemd_to_backports(tmp_path):
    """apt's simulation says installing would take systemd from backports (as mkosi's own package would, to
    >= 254): bootstrap stops naming the package, its suite and what to do, and apt-get installs nothing."""
    result, calls = _bootstrap_with_simulated_apt(tmp_path, (
        "Inst systemd [252.39-1~deb12u2] (254.26-1~bpo12+1 Debian Backports:oldstable-backports [amd64])\n"
        "Inst qemu-utils (1:10.0.2 Debian Backports:oldstable-backports [amd64])\n"))
    assert result.returncode != 0, result.stderr
    assert "would move the host's systemd (from oldstable-backports) to another suite" in result.stderr
    assert "apt-cache policy systemd" in result.stderr and "nothing was installed" in result.stderr
    assert all(" -s " in line or "update" in line for line in calls), calls


@pytest.mark.skipif(os.geteuid() != 0, reason="bootstrap installs only as root")
def test_bootstrap_takes_the_pending_updates_of_the_hosts_own_release(tmp_path):
    """A fresh Debian 12 has security and point-release updates of apt, dpkg, libc6 and systemd pending:
    those are the host's own release and bootstrap installs (the spy's dpkg-query then still reports the
    packages missing, so it stops after installing)."""
    result, calls = _bootstrap_with_simulated_apt(tmp_path, (
        "Inst apt [2.6.1] (2.6.2 Debian-Security:12/oldstable-security [amd64])\n"
        "Inst dpkg [1.21.22] (1.21.23 Debian:12.15/oldstable [amd64])\n"
        "Inst libc6 [2.36-9+deb12u10] (2.36-9+deb12u13 Debian:12.15/oldstable, Debian:12.15/oldstable [amd64])\n"
        "Inst systemd [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.15/oldstable [amd64])\n"))
    assert "would move" not in result.stderr, result.stderr
    installs = [line for line in calls if line.startswith("install -y")]
    assert installs and "ovmf" in installs[0], calls
    assert "packages still missing" in result.stderr


def _bootstrap_text() -> str:
    """scripts/bootstrap without its comments (those inside the arrays say why, in words and parentheses)."""
    return "\n".join(line.split("#", 1)[0] for line in (ROOT / "scripts" / "bootstrap").read_text().splitlines())


def test_bootstrap_never_installs_mkosi_or_systemd_and_pins_every_byte_writing_tool():
    """QEMU comes from apt (bookworm-backports on bookworm, trixie itself on trixie); mkosi 24.3 (whose
    package depends on systemd >= 254) and the tools that write image bytes are unpacked into .tools/ at
    exact versions, never installed with apt."""
    text = _bootstrap_text()
    qemu = text.split("QEMU_PACKAGES=(", 1)[1].split(")", 1)[0].split()
    main = text.split("MAIN_PACKAGES=(", 1)[1].split("\n  docker-registry)", 1)[0].split()
    pins = dict(p.split("=", 1) for p in text.split("TOOL_PINS=(", 1)[1].split(")", 1)[0].split())
    assert qemu == ["qemu-system-x86", "qemu-utils"]
    assert not {"mkosi", "systemd", "systemd-container", "systemd-boot", "e2fsprogs"} & set(main)
    assert {"mkosi", "systemd", "e2fsprogs", "dosfstools", "mtools", "qemu-utils", "tar", "gzip"} <= set(pins)
    assert all(version[0].isdigit() for version in pins.values()), pins


def test_the_unpacked_toolchain_is_the_pinned_one():
    """.tools/versions.tsv (what bootstrap unpacked, read from the packages themselves) holds exactly TOOL_PINS,
    and beside them the tools' libraries, so nothing but glibc comes from the host."""
    text = _bootstrap_text()
    pins = {tuple(p.split("=", 1)) for p in text.split("TOOL_PINS=(", 1)[1].split(")", 1)[0].split()}
    libraries = set(text.split("TOOL_LIBRARIES=(", 1)[1].split(")", 1)[0].split())
    unpacked = {tuple(line.split("\t")) for line in (ROOT / ".tools" / "versions.tsv").read_text().splitlines()}
    assert pins <= unpacked and {name for name, _ in unpacked - pins} == libraries
    for binary in ("bin/systemd-repart", "bin/mke2fs.bin", "bin/systemd-tmpfiles", "exports/qemu-img", "exports/tar"):
        linked = subprocess.run(["ldd", str(ROOT / ".tools" / binary)], capture_output=True, text=True).stdout
        from_host = [line.split()[0] for line in linked.splitlines() if "=>" in line and str(ROOT / ".tools") not in line]
        assert set(from_host) <= {"libc.so.6", "libm.so.6"}, (binary, from_host)
