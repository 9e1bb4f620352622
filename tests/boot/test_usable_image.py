"""An image people can use: a user with a key and sudo, extra packages and files, a disk size, DHCP and
SSH; `pmem-image run` boots it, `pmem-image ssh` logs in. Built and booted for real (TCG here)."""

import json
import os
import subprocess
import time

import pytest

import cli
from cli import ENV, OUT
from conftest import PMEM_IMAGE, root_filesystem
from conftest import debugfs as read_with_debugfs

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]
NAME = "access-lab"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The profile (with a throwaway key made here, never shipped) built once for every test below."""
    home = tmp_path_factory.mktemp("access")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pmem-image-test", "-f",
                    str(home / "id_ed25519")], check=True)
    overlay = home / "overlay" / "etc" / "pmem-lab"
    overlay.mkdir(parents=True)
    (overlay / "motd").write_text("from the extra tree\n")
    key = (home / "id_ed25519.pub").read_text().strip()
    profile = home / f"{NAME}.yaml"
    profile.write_text(f"""name: {NAME}
distribution: {{name: debian, release: bookworm}}
vm: {{memory: 4G, cpus: 2}}
pmem:
  - {{size: 1G, offset: 4G, filesystem: ext4}}
users:
  - name: dev
    ssh_authorized_keys: ["{key}"]
    sudo: true
packages: [fio]
extra_trees: [overlay]
ssh: true
disk: {{size: 4G}}
""")
    env = dict(ENV)
    built = cli.pmem_image("build", str(profile), env=env)
    assert built.returncode == 0, built.stderr[-4000:]
    return home, profile, env


def pmem_image(env, *args, timeout=300):
    return cli.pmem_image(*args, env=env, timeout=timeout)


def test_golden_hygiene_of_an_image_with_users_and_ssh(lab):
    """No SSH host keys, no password for the user (key login only), root locked, machine-id uninitialised."""
    source, root_size = root_filesystem(OUT / NAME / f"{NAME}.raw")
    assert root_size == 4 << 30                                              # disk.size: the root partition

    def debugfs(request: str) -> str:
        return read_with_debugfs(source, request)

    assert "ssh_host_" not in debugfs("ls /etc/ssh")
    logs = debugfs("ls /var/log")
    assert "alternatives.log" not in logs and "dpkg.log" not in logs and "history.log" not in debugfs("ls /var/log/apt")
    assert "_Packages" not in debugfs("ls /var/lib/apt/lists")              # no package lists of the build
    shadow = {line.split(":")[0]: line.split(":")[1] for line in debugfs("cat /etc/shadow").splitlines() if ":" in line}
    assert shadow["root"] in ("*", "!", "!*") and shadow["dev"] == "*"
    assert debugfs("cat /etc/machine-id").strip() in ("", "uninitialized")
    assert "NOPASSWD" in debugfs("cat /etc/sudoers.d/pmem-image-dev")
    assert "pmem-image-test" in debugfs("cat /home/dev/.ssh/authorized_keys")


def test_run_then_ssh_in_and_use_the_pmem(lab):
    home, profile, env = lab
    key = str(home / "id_ed25519")
    started = time.monotonic()
    console = home / "run.log"      # a file, not a pipe: a full pipe would stall the guest's console
    process = subprocess.Popen([str(PMEM_IMAGE), "run", "--accel", "tcg", str(profile)], stdin=subprocess.DEVNULL,
                               stdout=console.open("w"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 600
        while True:
            probe = pmem_image(env, "ssh", NAME, "-i", key, "--", "true", timeout=60)
            if probe.returncode == 0:
                break
            assert process.poll() is None, "run exited before SSH came up"
            assert time.monotonic() < deadline, f"no SSH login in 600 s: {probe.stderr}"
            time.sleep(5)
        print(f"run to first SSH login: {time.monotonic() - started:.0f}s")

        def guest(*command: str) -> str:
            result = pmem_image(env, "ssh", NAME, "-i", key, "--", *command)
            assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
            return result.stdout

        assert "dax" in guest("findmnt", "-no", "OPTIONS", "/mnt/pmem0")
        listing = pmem_image(env, "ssh", NAME, "-i", key, "--", "sudo", "-n", "ndctl", "list")
        assert "namespace0.0" in listing.stdout and "unable to resolve host" not in listing.stderr, listing.stderr
        assert guest("fio", "--version").startswith("fio-")
        assert guest("cat", "/etc/pmem-lab/motd") == "from the extra tree\n"
        size_kb = int(guest("df", "--output=size", "-k", "/").split()[-1])
        assert 3.5 * 2**20 < size_kb <= 4 * 2**20                           # the 4G root partition
        pmem_image(env, "ssh", NAME, "-i", key, "--", "sudo", "-n", "systemctl", "poweroff")
        assert process.wait(timeout=120) == 0
        banner = console.read_text(errors="replace")
        assert "/dev/pmem0: 1 GiB at 0x100000000, ext4 on /mnt/pmem0" in banner and "pmem-image ssh" in banner
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (OUT / ".state" / NAME / "run" / "overlay.qcow2").exists()     # discarded without --persist
    assert (OUT / ".state" / NAME / "run" / "image-key").is_file()             # the run dir was used


def test_verify_proves_pmem_and_logs_in_with_a_throwaway_key(lab):
    """verify hands the guest a key for this boot only (OEM string -> /run), logs in as dev, and the image
    on disk still has no such key afterwards (the overlay is discarded)."""
    home, profile, env = lab
    result = pmem_image(env, "verify", "--fast", "--json", str(profile), timeout=1200)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["passed"], result.stdout[-3000:] + result.stderr[-2000:]
    row = next(c for c in report["checks"] if c["name"] == "ssh login as dev")
    assert row["passed"] and "dax" in row["detail"]
