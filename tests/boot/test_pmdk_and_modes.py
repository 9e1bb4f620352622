"""PMDK end to end and every namespace mode, on real images booted in QEMU: pmdk-dev (PMDK rows and a warm
reboot keeping a pool, in one boot; a program compiled against libpmemobj on the image over `run` + `ssh`)
and pmem-modes (fsdax map=dev, devdax, sector, raw, and their modes kept across a warm reboot)."""

import os
import subprocess
import time

import pytest

from cli import ENV, OUT, pmem_image, proven, rows, running
from conftest import PMEM_IMAGE, PROFILES

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]
COUNTER = r"""
#include <libpmemobj.h>
#include <stdio.h>
struct root { long count; };
int main(void) {
    PMEMobjpool *pop = pmemobj_open("/mnt/pmem0/counter.obj", "counter");
    if (!pop) pop = pmemobj_create("/mnt/pmem0/counter.obj", "counter", PMEMOBJ_MIN_POOL, 0600);
    if (!pop) { perror("pmemobj"); return 1; }
    struct root *r = pmemobj_direct(pmemobj_root(pop, sizeof *r));
    TX_BEGIN(pop) { pmemobj_tx_add_range_direct(r, sizeof *r); r->count++; } TX_END
    printf("count %ld\n", r->count);
    pmemobj_close(pop);
}
"""


def test_pmdk_dev_is_proven_with_pmdk_and_its_pmem_and_pool_survive_a_warm_reboot():
    """One boot proves the PMDK rows on the DAX mount and the device DAX, the SSH login, and (the guest seeds
    its mounts and a PMDK pool, reboots warm in the same QEMU process, then runs the proof) that seeds and pool
    survive the reset while the boot-time mkfs keeps the existing filesystem. Direct kernel boot: nothing here
    is about firmware (default and debian-xfs-uefi prove those boots)."""
    report = proven("build", "--verify", "--warm-reboot", "--fast", "--json", str(PROFILES / "pmdk-dev.yaml"))
    passed = rows(report)
    for row in ("/dev/pmem0 PMDK sees pmem", "/dev/pmem0 PMDK pool", "/dev/dax1.0 device DAX",
                "/dev/dax1.0 stores read back", "/dev/dax1.0 PMDK sees pmem", "ssh login as dev",
                "/dev/pmem0 survives warm reboot", "/dev/pmem0 PMDK pool survives warm reboot"):
        assert row in passed, row
    mount = next(m for m in report["guest_report"]["mounts"] if m["mountpoint"] == "/mnt/pmem0")
    pool = mount["pmdk"]["pool"]
    print(f"\nPMDK in the guest: granularity {mount['pmdk']['pmem2']['granularity']}, "
          f"pool of {pool['size'] >> 20} MiB created in {pool['create_seconds']:.3f} s")
    assert mount["pmdk"]["pmem2"]["granularity"] in ("CACHE_LINE", "BYTE")
    serial = (OUT / "pmdk-dev" / "verify" / "serial.log").read_text(errors="replace")
    assert "seeds written; warm reboot" in serial and "already has ext4; keeping it" in serial      # the planned type, found
    setup = report["guest_report"]["namespace_setup"]
    # The second boot found the device DAX it made in the first and left it alone.
    assert [(s["device"], s["action"]) for s in setup] == [("dax1.0", "kept")]


def test_compile_a_libpmemobj_program_on_the_image_over_run_and_ssh(tmp_path):
    """docs/pmdk.md's steps: run, ssh in as dev (no key in the profile: run makes one for
    the boot), compile against libpmemobj with pkg-config, run it twice, pmempool info on the pool."""
    console = tmp_path / "run.log"
    process = subprocess.Popen([str(PMEM_IMAGE), "run", "--accel", "tcg", str(PROFILES / "pmdk-dev.yaml")],
                               stdin=subprocess.DEVNULL, stdout=console.open("w"), stderr=subprocess.STDOUT, env=ENV)
    try:
        deadline = time.monotonic() + 600
        while pmem_image("ssh", "pmdk-dev", "--", "true", timeout=60).returncode != 0:
            assert process.poll() is None, "run exited before SSH came up:\n" + console.read_text()[-3000:]
            assert time.monotonic() < deadline, "no SSH login in 600 s"
            time.sleep(5)
        script = ("sudo chown dev /mnt/pmem0 && cat > counter.c && "
                  "gcc counter.c -o counter $(pkg-config --cflags --libs libpmemobj) && "
                  "./counter && ./counter && pmempool info /mnt/pmem0/counter.obj | head -n 3")
        result = pmem_image("ssh", "pmdk-dev", "--", script, input=COUNTER, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "count 1\ncount 2\n" in result.stdout and "obj" in result.stdout.lower()
    finally:
        pmem_image("ssh", "pmdk-dev", "--", "sudo systemctl poweroff", timeout=60)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
    assert not (OUT / ".state" / "pmdk-dev" / "run" / "session-key").exists()      # the boot's key goes with the boot
    assert (OUT / ".state" / "pmdk-dev" / "run").is_dir()                          # run kept its state there


def test_every_namespace_mode_is_proven_and_kept_across_a_warm_reboot():
    """The first boot makes each mode's namespace and seeds the mounts; after the warm reset the proof finds
    every mode (fsdax map=dev, devdax, sector, raw) again, with its data."""
    warm = proven("build", "--verify", "--warm-reboot", "--fast", "--json", str(PROFILES / "pmem-modes.yaml"))
    passed = rows(warm)
    assert "/dev/pmem0 DAX active" in passed and "/dev/pmem2s without DAX (sector mode)" in passed
    assert "/dev/pmem3 raw block device without DAX" in passed and "/dev/dax1.0 stores read back" in passed
    assert "map dev" in passed["/dev/pmem0 namespace"]
    assert {"/dev/pmem0 survives warm reboot", "/dev/pmem2s survives warm reboot"} <= set(passed)
    # Info blocks (pfn, device DAX, BTT) are found again after the reset and left alone; raw is a switch.
    actions = {s["device"]: s["action"] for s in warm["guest_report"]["namespace_setup"]}
    assert actions == {"pmem0": "kept", "dax1.0": "kept", "pmem2s": "kept", "pmem3": "force_raw"}


GOLDEN_LAB = """name: golden-lab
distribution: {{name: debian, release: trixie}}
vm: {{memory: 6G, cpus: 2, firmware: uefi}}
pmem:
  - {{size: 1G, offset: 4G, mode: fsdax, map: dev, filesystem: xfs, mountpoint: /mnt/pool}}
  - {{size: 512M, offset: 5G, mode: devdax}}
pmdk: true
users:
  - name: dev
    ssh_authorized_keys: ["{key}"]
    sudo: true
ssh: true
formats: [qcow2]
"""


def test_a_golden_lab_keeps_its_mount_in_the_proof_of_its_export_and_in_a_plain_boot(tmp_path):
    """The shape a user's golden lab had when its pmem was unmounted seconds after boot (issue 22): trixie on
    UEFI, fsdax xfs with map: dev (the namespace is made anew at boot) beside device DAX, PMDK, a user
    with a key, a qcow2 export. The export's proof (OVMF, virtio) has every row, the mount still standing at
    its end among them; a plain boot keeps it too, and with it unmounted the empty mountpoint refuses writes
    instead of filling the root disk."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    profile = tmp_path / "golden-lab.yaml"
    profile.write_text(GOLDEN_LAB.format(key=(tmp_path / "id_ed25519.pub").read_text().strip()))
    report = proven("build", "--verify", "--format", "qcow2", "--json", str(profile))
    passed = rows(report)
    assert report["disk"]["export"] == "qcow2" and report["disk"]["bus"] == "virtio"
    for row in ("/dev/pmem0 DAX active", "/dev/pmem0 still mounted at the end", "/dev/pmem0 PMDK pool",
                "/dev/dax1.0 stores read back", "ssh login as dev"):
        assert row in passed, row
    assert "map dev" in passed["/dev/pmem0 namespace"]
    with running(profile, "golden-lab", tmp_path / "run.log", "-i", str(key)) as ssh:
        settled = ssh("systemctl", "is-system-running", "--wait", timeout=300)
        assert settled.stdout.strip() in ("running", "degraded"), settled.stdout + settled.stderr
        mount = ssh("findmnt", "-no", "SOURCE,OPTIONS", "/mnt/pool").stdout
        assert mount.startswith("/dev/pmem0 ") and "dax" in mount, mount
        assert ssh("sudo", "-n", "umount", "/mnt/pool").returncode == 0
        refused = ssh("sudo", "-n", "touch", "/mnt/pool/lost-on-the-root-disk")
        assert refused.returncode != 0 and "Operation not permitted" in refused.stderr, refused.stderr
