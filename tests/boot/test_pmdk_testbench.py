"""The PMDK test bench (profiles/pmdk-testbench.yaml) built and booted in QEMU: its four device DAX have the
alignments PMDK's tests ask for (the proof's device rows compare daxctl's align with the plan), and through
`pmem-image test` its user tester, in the group pmem, finds what PMDK's suite needs: testconfig.sh naming
every device DAX, writable test directories on and off pmem, device DAX it may open, the pmem's sysfs
addresses it may read (an account outside the group may not), deep_flush it may write, PMDK's pmempool
making a pool on a 4 KiB-aligned device DAX as that user, and Valgrind; a link put where a test directory
goes is neither followed nor removed by the root script that makes them."""

import json
import os

import pytest

from cli import OUT, pmem_image, proven, rows
from conftest import PROFILES

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]

PROFILE = PROFILES / "pmdk-testbench.yaml"
# Run as tester inside the guest; every line of its output is one fact, the last the JSON of them all.
CHECKS = r"""
set -u
. /etc/pmem-image/pmdk/testconfig.sh
facts() { printf '%s\n' "$@"; }
id -nG | tr ' ' '\n' | grep -qx pmem && facts "in group pmem"
facts "devices ${DEVICE_DAX_PATH[*]}"
facts "aligned $(for d in "${DEVICE_DAX_PATH[@]}"; do daxctl list -d "${d#/dev/}" | jq -r '.[0].align'; done | paste -sd ' ')"
facts "pmem dir $PMEM_FS_DIR $(findmnt -no FSTYPE,OPTIONS -T "$PMEM_FS_DIR" | grep -o '^ext4\|dax=always' | paste -sd ' ')"
touch "$PMEM_FS_DIR/w" "$NON_PMEM_FS_DIR/w" && facts "both test dirs writable"
opened=0
for device in "${DEVICE_DAX_PATH[@]}"; do
  if exec 3<>"$device"; then opened=$((opened + 1)); exec 3>&-; fi
done
facts "opened $opened device DAX read-write"
# Permission, not content: an idle seed device (pfnN.0, daxN.1, ...) has no range to read yet.
unreadable=$(for file in /sys/bus/nd/devices/*/resource; do test -r "$file" || echo "$file"; done)
read_region=$(cat /sys/bus/nd/devices/region0/resource)
facts "unreadable resources: ${unreadable:-none}"
[ "$((read_region))" -gt 0 ] && facts "region0's address read"
# deep_flush exists where a region can flush (not on memmap pmem); where it does, tester may write it.
readonly_flush=$(for f in /sys/bus/nd/devices/region*/deep_flush; do [ ! -e "$f" ] || [ -w "$f" ] || echo "$f"; done)
facts "read-only deep_flush: ${readonly_flush:-none}"
outsider=$(sudo -n -u nobody cat /sys/bus/nd/devices/region1/resource 2>&1 >/dev/null | grep -c 'Permission denied')
facts "outside the group: denied $outsider"
four_k=$(for d in "${DEVICE_DAX_PATH[@]}"; do daxctl list -d "${d#/dev/}" | jq -r '.[0] | select(.align == 4096) | .chardev'; done | sed -n 1p)
pmempool create --layout=bench obj "/dev/$four_k" && pmempool info "/dev/$four_k" | grep 'Layout.*bench' >/dev/null &&
  facts "pmempool pool on /dev/$four_k as $(id -un)"
valgrind --version | grep '^valgrind-3' >/dev/null && facts "valgrind"
cp /etc/pmem-image/pmdk/testconfig.sh /etc/pmem-image/pmdk/testconfig.py .
# Hostile: a link where the non-pmem test directory goes. pmdk-testconfig (as root) must neither follow it
# (chown /etc) nor remove it, and must leave the directory out of the configuration.
sudo -n sh -c 'rm -rf /var/lib/pmem-image/pmdk-tests && ln -s /etc /var/lib/pmem-image/pmdk-tests &&
  /usr/lib/pmem-image/pmdk-testconfig' >/dev/null 2>&1
[ -L /var/lib/pmem-image/pmdk-tests ] && [ "$(stat -c %G /etc)" = root ] &&
  grep -qx 'NON_PMEM_FS_DIR=' /etc/pmem-image/pmdk/testconfig.sh && facts "a link in its place is left and not followed"
"""


def test_the_test_bench_has_what_pmdks_suite_needs_for_an_ordinary_user(tmp_path):
    report = proven("build", "--verify", "--fast", "--json", str(PROFILE), timeout=2400)
    passed = rows(report)
    aligns = {row: passed.get(f"{row} device DAX", "") for row in ("/dev/dax1.0", "/dev/dax2.0", "/dev/dax3.0",
                                                                       "/dev/dax4.0")}
    assert [detail.rsplit("align ", 1)[-1] for detail in aligns.values()] == ["4 KiB", "4 KiB", "2 MiB", "2 MiB"], aligns
    assert "/dev/pmem0 MAP_SYNC" in passed and "/dev/pmem0 PMDK pool" in passed

    tmp_path.chmod(0o777)          # 9p keeps the host's permissions: the share is tester's to write
    result = pmem_image("test", "--user", "tester", "--share", f"{tmp_path}:/src", "--json", str(OUT / "pmdk-testbench"),
                        "--", "bash", "-c", CHECKS, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    facts = result.stdout.splitlines()[:-1]
    assert facts == [
        "in group pmem", "devices /dev/dax1.0 /dev/dax2.0 /dev/dax3.0 /dev/dax4.0",
        "aligned 4096 4096 2097152 2097152",
        "pmem dir /mnt/pmem0/pmdk-tests ext4 dax=always", "both test dirs writable", "opened 4 device DAX read-write",
        "unreadable resources: none", "region0's address read", "read-only deep_flush: none", "outside the group: denied 1",
        "pmempool pool on /dev/dax1.0 as tester", "valgrind", "a link in its place is left and not followed"], \
        result.stdout + result.stderr
    config = (tmp_path / "testconfig.py").read_text()
    assert "'device_dax_path': ['/dev/dax1.0','/dev/dax2.0','/dev/dax3.0','/dev/dax4.0']" in config, config
    assert "PMEM_FS_DIR=/mnt/pmem0/pmdk-tests" in (tmp_path / "testconfig.sh").read_text()
    timing = json.loads(result.stdout.splitlines()[-1])
    print(f"\npmdk-testbench: verify --fast {report.get('boot_seconds', 0):.0f} s; test: boot "
          f"{timing['boot_seconds']:.0f} s, checks {timing['command_seconds']:.0f} s")
