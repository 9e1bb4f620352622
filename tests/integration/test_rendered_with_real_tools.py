"""Rendered trees checked by the real tools: mkosi 24.3 summary, findmnt --verify, sh -n, shellcheck."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.build.mkosi import mkosi_executable
from builder.render.outputs import render
from builder.build.tree import write_tree
from conftest import FIXTURES, PROFILES, plan_of_file

pytestmark = pytest.mark.integration
PROFILE_FILES = sorted(PROFILES.glob("*.yaml")) + sorted((FIXTURES / "valid").glob("*.yaml"))


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, tuple]:
    root = tmp_path_factory.mktemp("trees")
    result = {}
    for path in PROFILE_FILES:
        plan, _ = plan_of_file(path)
        write_tree(render(plan), root / path.stem)
        result[path.stem] = (plan, root / path.stem)
    return result


def mkosi_summary(directory: Path) -> dict:
    result = subprocess.run([mkosi_executable(), "-C", str(directory), "--json", "summary"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "Unknown setting" not in result.stderr and "is not valid in" not in result.stderr, result.stderr
    return json.loads(result.stdout)["Images"][0]


@pytest.mark.parametrize("name", [p.stem for p in PROFILE_FILES])
def test_mkosi_summary_accepts_rendered_tree(trees, name):
    plan, directory = trees[name]
    image = mkosi_summary(directory)
    assert image["Distribution"] == plan.distribution and image["Release"] == plan.release
    assert image["Bootable"] == "enabled" and image["Bootloader"] == "grub"
    assert image["BiosBootloader"] == ("grub" if plan.bios_bootloader else "none")
    assert set(plan.packages) <= set(image["Packages"]) and "jq" in image["Packages"]
    assert image["Seed"] == plan.seed and image["Format"] == "disk"
    # The command line reaches the boot entry from /etc/kernel/cmdline; KernelCommandLine stays empty so
    # mkosi 24.3 does not repeat every argument.
    assert image["KernelCommandLine"] == []
    cmdline = (directory / "mkosi.extra/etc/kernel/cmdline").read_text().split()
    for region in plan.regions:   # memmap regions each once; NVDIMMs none (the firmware describes them)
        assert cmdline.count(f"memmap={region.memmap}") == (1 if region.memmap else 0)
    assert not any(a.startswith("memmap=") for a in cmdline) or plan.pmem_backend == "memmap"
    assert "console=ttyS0" in cmdline and "systemd.firstboot=off" in cmdline
    assert [str(s) for s in image["BuildScripts"]][0].endswith("mkosi.build.chroot")


def test_percent_survives_mkosi_specifier_parsing(trees):
    _, directory = trees["percent-arg"]
    conf = directory / "mkosi.local.conf"
    conf.write_text("[Content]\nEnvironment=PERCENT=50%%\n")
    try:
        assert mkosi_summary(directory)["Environment"]["PERCENT"] == "50%"
    finally:
        conf.unlink()


@pytest.mark.parametrize("name", [p.stem for p in PROFILE_FILES])
def test_fstab_verifies_with_findmnt(trees, name):
    plan, directory = trees[name]
    fstab = directory / "mkosi.extra/etc/fstab"
    result = subprocess.run(["findmnt", "--verify", "--verbose", "--tab-file", str(fstab)], capture_output=True, text=True)
    # The pmem devices and mountpoints exist only in the guest; everything else must parse cleanly.
    errors = [l for l in result.stdout.splitlines() if l.strip().startswith("[E]")
              and "does not exist" not in l and "unreachable" not in l and "not found" not in l]
    assert errors == [], result.stdout
    parsed = subprocess.run(["findmnt", "--tab-file", str(fstab), "-J", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS"],
                            capture_output=True, text=True)
    entries = json.loads(parsed.stdout)["filesystems"] if parsed.stdout.strip() else []
    mounted = [r for r in plan.regions if r.mountpoint]
    assert [(e["source"], e["target"], e["fstype"]) for e in entries] == [
        (f"/dev/{r.device}", r.mountpoint, r.filesystem) for r in mounted]
    assert all((r.dax_option in e["options"].split(",")) if r.dax_option else "dax" not in e["options"]
               for e, r in zip(entries, mounted, strict=True))


SCRIPTS = ["mkosi.build.chroot", "mkosi.finalize", "mkosi.extra/usr/lib/pmem-image/pmem-mkfs",
           "mkosi.extra/usr/lib/pmem-image/pmem-selftest", "mkosi.extra/usr/lib/pmem-image/pmem-layout-guard",
           "mkosi.extra/usr/lib/pmem-image/pmem-namespaces", "mkosi.extra/usr/lib/pmem-image/pmem-session-key",
           "mkosi.extra/usr/lib/pmem-image/pmem-test", "mkosi.extra/etc/profile.d/pmem-ready.sh"]
# Rendered only when the plan needs them.
OPTIONAL = {"pmem-mkfs": lambda plan: any(r.mkfs for r in plan.regions),
            "pmem-namespaces": lambda plan: any(r.reconfigure for r in plan.regions),
            "pmem-session-key": lambda plan: plan.ssh and bool(plan.users)}


@pytest.mark.parametrize("name", [p.stem for p in PROFILE_FILES])
def test_rendered_scripts_parse_and_lint(trees, name):
    plan, directory = trees[name]
    for script in SCRIPTS:
        path = directory / script
        wanted = OPTIONAL.get(script.rsplit("/", 1)[-1], lambda plan: True)(plan)
        assert path.exists() == wanted, script
        if not wanted:
            continue
        shell = "bash" if path.read_text().startswith("#!/bin/bash") else "sh"     # pmem-test needs bash
        assert subprocess.run([shell, "-n", str(path)]).returncode == 0, script
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, script
        if shutil.which("shellcheck"):
            lint = subprocess.run(["shellcheck", "-s", shell, "-e", "SC2034", str(path)], capture_output=True,
                                  text=True)
            assert lint.returncode == 0, lint.stdout


def test_pmem_mkfs_script_runs_the_planned_mkfs(trees, tmp_path):
    """Run the rendered script with fake blkid/mkfs on PATH: it makes a filesystem only when none is there."""
    _, directory = trees["multi-region"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for tool in ("mkfs.ext4", "mkfs.xfs"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {log}\n")
    # blkid -p as util-linux has it: the TYPE and exit 0 when it finds one, exit 2 when nothing is there,
    # other codes when the probe itself fails (FAKE_BLKID: "TYPE" or "exit N").
    (bin_dir / "blkid").write_text("#!/bin/sh\ncase \"$FAKE_BLKID\" in exit*) exit ${FAKE_BLKID#exit } ;; "
                                   "*) echo \"$FAKE_BLKID\" ;; esac\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    script = directory / "mkosi.extra/usr/lib/pmem-image/pmem-mkfs"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_BLKID": "exit 2"}
    assert subprocess.run([str(script), "pmem1"], env=env, capture_output=True).returncode == 0
    assert log.read_text() == "mkfs.xfs -q -f -m reflink=0 -L pmem1 /dev/pmem1\n"
    env["FAKE_BLKID"] = "ext4"                  # pmem0 is planned ext4 and has it: kept
    assert subprocess.run([str(script), "pmem0"], env=env, capture_output=True).returncode == 0
    for blkid, why in (("xfs", b"not the planned ext4"), ("exit 4", b"could not probe"), ("exit 8", b"could not probe")):
        env["FAKE_BLKID"] = blkid
        refused = subprocess.run([str(script), "pmem0"], env=env, capture_output=True)
        assert refused.returncode == 1 and why in refused.stderr, refused.stderr
    assert log.read_text().count("\n") == 1    # mkfs ran for the empty device only
    assert subprocess.run([str(script), "pmem7"], env=env, capture_output=True).returncode == 2


def test_access_fields_render_what_mkosi_and_shellcheck_accept(tmp_path):
    """Users, keys, sudo, packages, extra trees, ssh, disk size and autologin: mkosi 24.3 reads every setting
    and the user script passes shellcheck."""
    import json as json_
    from builder.build.tree import write_tree
    from builder.render.outputs import render
    from conftest import plan_of_text
    (tmp_path / "overlay" / "etc").mkdir(parents=True)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dev@laptop"
    plan, _ = plan_of_text(
        "name: acc\ndistribution: {name: debian, release: bookworm}\npmem: [{memmap: 1G!4G}]\n"
        f"users:\n  - {{name: dev, sudo: true, groups: [video], ssh_authorized_keys: ['{key}'],\n"
        "     password_hash: '$y$j9T$abcdefgh$ijklmnopqrstu'}\nroot: {ssh_authorized_keys: ['" + key + "']}\n"
        "packages: [fio]\nextra_trees: [overlay]\nssh: true\ndisk: {size: 4G}\nconsole_autologin: true\n",
        str(tmp_path / "p.yaml"))
    write_tree(render(plan), tmp_path / "tree")
    summary = subprocess.run([mkosi_executable(), "-C", str(tmp_path / "tree"), "--json", "summary"], capture_output=True,
                             text=True, check=True)
    image = json_.loads(summary.stdout)["Images"][0]
    assert image["Autologin"] is True and "fio" in image["Packages"] and "openssh-server" in image["Packages"]
    assert image["RepartDirectories"] and image["PostInstallationScripts"]
    subprocess.run(["shellcheck", "-s", "sh", str(tmp_path / "tree" / "mkosi.postinst.chroot")], check=True)


@pytest.mark.parametrize("name", ["default", "debian-xfs-uefi", "trixie", "nvdimm-lab", "virtio-pmem", "cxl-lab"])
def test_libvirt_domain_validates(tmp_path, name):
    """The launch contract as a libvirt domain: libvirt's own schema accepts it (virt-xml-validate)."""
    from builder.render.launch import libvirt_domain
    from conftest import PROFILES, plan_of_file
    plan, _ = plan_of_file(PROFILES / f"{name}.yaml")
    xml = tmp_path / "domain.xml"
    xml.write_text(libvirt_domain(plan, tmp_path / f"{name}.raw"))
    result = subprocess.run(["virt-xml-validate", str(xml), "domain"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = xml.read_text()
    assert f"<memory unit=\"MiB\">{plan.memory >> 20}</memory>" in text and f"machine=\"{plan.machine}\"" in text
    assert ('firmware="efi"' in text) == (plan.firmware == "uefi")


def test_libvirt_domain_carries_the_nvdimms(tmp_path):
    """nvdimm backend: libvirt gets each NVDIMM (shared file in the instance's state, out/.state/NAME/pmem-LAYOUT/,
    size with its label area, label size), maxMemory with a slot per NVDIMM and the NUMA cell memory devices
    need; its schema accepts it."""
    import xml.etree.ElementTree as ET
    from builder.render.launch import libvirt_domain, pmem_state_dir
    from conftest import PROFILES, plan_of_file
    plan, _ = plan_of_file(PROFILES / "nvdimm-lab.yaml")
    domain = ET.fromstring(libvirt_domain(plan, tmp_path / "nvdimm-lab" / "nvdimm-lab.raw"))
    nvdimms = domain.findall("devices/memory[@model='nvdimm']")
    assert [m.get("access") for m in nvdimms] == ["shared", "shared"]
    state = pmem_state_dir(tmp_path, plan)
    assert state.parent == tmp_path / ".state" / "nvdimm-lab"
    assert [m.findtext("source/path") for m in nvdimms] == [str(state / f"nvdimm{n}.img") for n in (0, 1)]
    assert [int(m.findtext("target/size")) for m in nvdimms] == [(1 << 20) + 128, (512 << 10) + 128]   # KiB
    assert [m.findtext("target/label/size") for m in nvdimms] == ["128", "128"]
    assert domain.find("maxMemory").get("slots") == "2" and domain.find("cpu/numa/cell") is not None


def test_the_esp_label_time_is_clamped_and_the_filesystem_stays_clean(tmp_path):
    """dosfstools 4.2 stamps the FAT volume label with the wall clock; after clamp_fat_label the entry has the
    SOURCE_DATE_EPOCH time (2026-01-01 00:00 here, as every file's), fsck.fat finds nothing to fix, and
    contents.json's partition view reads the disk with sfdisk and blkid."""
    import struct
    from builder.build.contents import clamp_fat_label, filesystems, partition_table
    from builder.runner import Runner
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", "80M", str(disk)], check=True)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: gpt\nstart=2048, size=131072, "
                   "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n", text=True, check=True)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "ESP", "--offset", "2048", str(disk), "65536"],
                   capture_output=True, check=True)
    table = partition_table(disk, Runner())
    assert "device" not in table and table["partitions"][0]["node"] == "1"
    assert filesystems(disk, table, Runner())["1"]["TYPE"] == "vfat"

    def label_entry() -> tuple:
        data = disk.read_bytes()[2048 * 512:]
        bps, spc, reserved, fats = struct.unpack_from("<HBHB", data, 11)
        fat_size, root_cluster = struct.unpack_from("<I4xI", data, 36)
        root = (reserved + fats * fat_size) * bps + (root_cluster - 2) * spc * bps
        entry = data[root:root + 32]
        assert entry[:11] == b"ESP        " and entry[11] == 0x08
        return struct.unpack_from("<HH", entry, 14) + struct.unpack_from("<HH", entry, 22)
    assert label_entry()[1] != 0x5c21                      # today, not 2026-01-01
    assert clamp_fat_label(disk, table, 1767225600) == 1
    assert label_entry() == (0, 0x5c21, 0, 0x5c21)          # 00:00:00, 2026-01-01 (created and modified)
    partition = tmp_path / "esp.img"
    partition.write_bytes(disk.read_bytes()[2048 * 512:(2048 + 131072) * 512])
    check = subprocess.run(["fsck.fat", "-n", str(partition)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_apt_reads_the_snapshot_sources_as_every_suite_of_that_moment(tmp_path):
    """The rendered snapshot sources, parsed by the real apt (no network: --print-uris): every index it
    would fetch comes from the snapshot of that moment, the security suite too."""
    from builder.render.outputs import render
    from conftest import FIXTURES, plan_of_file
    plan, _ = plan_of_file(FIXTURES / "valid" / "snapshot.yaml")
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "mkosi.sources").write_text(render(plan)["mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources"].content)
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    result = subprocess.run(["apt-get", "-o", "Dir::Etc::sourcelist=/dev/null", "-o", f"Dir::Etc::sourceparts={parts}",
                             "-o", f"Dir::State::Lists={tmp_path / 'lists'}", "--print-uris", "update"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    uris = [line.split()[0].strip("'") for line in result.stdout.splitlines() if line.startswith("'")]
    assert uris and all(u.startswith(("https://snapshot.debian.org/archive/debian/20261101T000000Z/dists/trixie",
                                      "https://snapshot.debian.org/archive/debian-security/20261101T000000Z/"))
                        for u in uris)
    assert any("/dists/trixie-security/" in u for u in uris) and any("/dists/trixie-updates/" in u for u in uris)
