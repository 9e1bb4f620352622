"""The guest's self-test report, assembled on this host: the rendered pmem-selftest run here (no pmem, so
empty lists), and its jq program fed facts as the guest gathers them (records with devices, mounts, DAX
devices, PMDK pools, seeds). The boot tests prove the same script in real guests; these show in a second
what each field becomes."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import PROFILES, plan_of_file
from builder.render.outputs import render
from builder.verify.proof import extract_report

pytestmark = pytest.mark.integration
RS, US = "\x1e", "\x1f"
REPORT_KEYS = {"format", "kernel_release", "cmdline", "root_source", "iomem_pmem", "e820_user_pmem", "dax_messages",
               "devices", "ndctl_namespaces", "namespace_setup", "dax_devices", "mounts", "kernel_config",
               "kernel_config_source", "iomem_kernel", "initrd", "warm_reboot", "power_cycle", "seeded", "regions",
               "nfit_table", "failed_units", "mounts_at_end", "cxl"}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("selftest")
    files = render(plan_of_file(PROFILES / "default.yaml")[0])
    for name in ("pmem-selftest", "pmem-report.jq"):
        (directory / name).write_text(files[f"mkosi.extra/usr/lib/pmem-image/{name}"].content)
    (directory / "pmem-selftest").chmod(0o755)
    return directory


def record(*fields: str) -> str:
    return US.join(fields) + RS


def assemble(scripts: Path, tmp_path: Path, **facts: str) -> dict:
    """Run pmem-report.jq as pmem-selftest does: the facts named in the script's two loops, every one a file."""
    script = (scripts / "pmem-selftest").read_text()
    one_line = re.search(r"for fact in ([a-z0-9_ ]+); do set -- \"\$@\" --arg", script)[1].split()
    whole = re.search(r"for fact in ([a-z0-9_ \\\n]+); do\n\s+set -- \"\$@\" --rawfile", script)[1].replace("\\", "").split()
    argv = ["jq", "-n", "-c", "-f", str(scripts / "pmem-report.jq"), "--arg", "required", facts.pop("required", "")]
    for name in one_line:
        argv += ["--arg", name, facts.pop(name, "")]
    for name in whole:
        (tmp_path / name).write_text(facts.pop(name, ""))
        argv += ["--rawfile", name, str(tmp_path / name)]
    assert facts == {}, f"not facts the script gathers: {sorted(facts)}"
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_rendered_self_test_reports_on_this_host(scripts):
    result = subprocess.run([str(scripts / "pmem-selftest")], capture_output=True, text=True, timeout=60)
    report = extract_report(result.stdout)
    assert result.returncode == 0 and report is not None, result.stdout[-2000:] + result.stderr[-2000:]
    assert set(report) == REPORT_KEYS and report["format"] == 1
    assert report["cmdline"] == Path("/proc/cmdline").read_text().strip()
    assert report["warm_reboot"] is None and report["power_cycle"] is None and report["namespace_setup"] is None
    assert isinstance(report["failed_units"], list) and isinstance(report["kernel_config"], dict)
    assert not list(Path("/run").glob("pmem-selftest.*")), "the facts directory is removed"


def test_records_become_devices_namespaces_regions_and_mounts(scripts, tmp_path):
    flush = {"program": "pmem-flush-test", "map_sync": True, "verification": "ok"}
    pmdk = {"program": "pmem-pmdk-check", "is_pmem": True}
    report = assemble(
        scripts, tmp_path, kernel="6.1.0-57-amd64", cmdline="rw memmap=1G!4G", root_source="/dev/vda3",
        kconfig_source="/usr/lib/modules/6.1.0-57-amd64/config", nfit="false",
        iomem="100000000-13fffffff : Persistent Memory (legacy)\n",
        devices=record("pmem0", "2097152", "namespace0.0", "0x100000000", "fsdax", "1") +
        record("pmem1", "8", "namespace1.0", "", "", ""),
        ndctl='[{"dev": "namespace0.0", "mode": "fsdax"}, {"dev": "namespace1.0", "mode": "raw"}]',
        ns_sysfs=record("namespace0.0", "0x100000000", "1073741824") + record("namespace1.0", "", ""),
        regions=record("region0", "e820", "0x100000000", "1073741824", "nmem0\nnmem1"),
        mounts=record("/dev/pmem0", "/mnt/pmem0", "ext4", "rw,dax=always", "ran", json.dumps(flush), "",
                      "1", json.dumps(pmdk), "", "0", "checked", "0") +
        record("/dev/pmem1", "/mnt/pmem1", "xfs", "rw", "ran", "not json", "mmap failed", "0"),
        failed_units="a.service\nb.service\n", warm_reboot="null\n", power_cycle="null\n")
    assert report["devices"] == [
        {"name": "pmem0", "size": 1073741824, "namespace": "namespace0.0", "start": "0x100000000", "mode": "fsdax",
         "dax_capable": True},
        {"name": "pmem1", "size": 4096, "namespace": "namespace1.0", "start": None, "mode": "", "dax_capable": None}]
    assert report["ndctl_namespaces"] == [
        {"dev": "namespace0.0", "mode": "fsdax", "resource": "0x100000000", "raw_size": 1073741824},
        {"dev": "namespace1.0", "mode": "raw", "resource": None, "raw_size": None}]
    assert report["regions"] == [{"dev": "region0", "provider": "e820", "resource": "0x100000000",
                                  "size": 1073741824, "dimms": ["nmem0", "nmem1"]}]
    first, second = report["mounts"]
    assert first == {"device": "/dev/pmem0", "mountpoint": "/mnt/pmem0", "fstype": "ext4",
                     "options": ["rw", "dax=always"], "flush_test": flush,
                     "pmdk": {**pmdk, "exit": 0, "pmempool_check": {"exit": 0, "output": "checked"}}}
    assert second["flush_test"] == {"error": "mmap failed", "output": "not json"} and second["pmdk"] is None
    assert report["iomem_pmem"] == ["100000000-13fffffff : Persistent Memory (legacy)"]
    assert report["failed_units"] == ["a.service", "b.service"] and report["nfit_table"] is False
    assert report["warm_reboot"] is None and report["dax_devices"] == [] and report["ndctl_namespaces"][0]


def test_dax_devices_seeds_and_kernel_options(scripts, tmp_path):
    report = assemble(
        scripts, tmp_path, required="FS_DAX DEV_DAX BTT", nfit="true", ndctl='{"dev": "namespace0.0"}',
        kconfig="CONFIG_FS_DAX=y\n# CONFIG_BTT is not set\nCONFIG_DEV_DAX=m\nCONFIG_FS_DAX_PMD=y\n",
        dax_devices=record("dax0.0", '[{"chardev": "dax0.0", "size": 1048576}]', '{"verification": "ok"}', "", "0",
                           "1", "Segmentation fault", "core dumped", "139") +
        record("dax1.0", "", "", "no such device", "1", "0"),
        warm_reboot=record("/mnt/pmem0", "ok", "seed ok", "1", '{"pool": "ok"}', "", "0", "consistent", "0") +
        record("/mnt/pmem1", "failed", "seed differs", "0"),
        power_cycle="null\n", namespace_setup='{"regions": []}')
    assert report["kernel_config"] == {"FS_DAX": "y", "BTT": "n", "DEV_DAX": "m"}
    assert report["nfit_table"] is True and report["namespace_setup"] == {"regions": []}
    assert report["ndctl_namespaces"] == [{"dev": "namespace0.0", "resource": None, "raw_size": None}]
    first, second = report["dax_devices"]
    assert first == {"name": "dax0.0", "daxctl": {"chardev": "dax0.0", "size": 1048576},
                     "flush_test": {"verification": "ok", "exit": 0},
                     "pmdk": {"error": "core dumped", "output": "Segmentation fault", "exit": 139}}
    assert second == {"name": "dax1.0", "daxctl": None, "flush_test": {"error": "no such device", "output": "",
                                                                        "exit": 1}, "pmdk": None}
    assert report["warm_reboot"] == [
        {"mountpoint": "/mnt/pmem0", "check_seed": "ok", "output": "seed ok",
         "pmdk_pool": {"pool": "ok", "exit": 0, "pmempool_check": {"exit": 0, "output": "consistent"}}},
        {"mountpoint": "/mnt/pmem1", "check_seed": "failed", "output": "seed differs", "pmdk_pool": None}]
    assert report["power_cycle"] is None and report["seeded"] is None


def test_the_seeding_boot_reports_what_it_wrote(scripts, tmp_path):
    report = assemble(scripts, tmp_path, seeded=record("/mnt/pmem0", "ok", "ok") + record("/mnt/pmem1", "failed", "none"))
    assert report["seeded"] == [{"mountpoint": "/mnt/pmem0", "seed": "ok", "pool": "ok"},
                                {"mountpoint": "/mnt/pmem1", "seed": "failed", "pool": None}]


def test_cxl_listings_become_arrays_whatever_cxl_list_printed(scripts, tmp_path):
    """cxl list prints a lone object without its array and nothing at all when there is nothing: the report has
    arrays either way, and no cxl key's content where the image has no cxl tool."""
    report = assemble(scripts, tmp_path, memdevs='{"memdev": "mem0", "serial": 1}\n', ports="",
                      decoders='[{"decoder": "decoder0.0"}, {"decoder": "decoder0.1"}]', cxl_regions="not json",
                      cxl_setup='[{"number": 0, "action": "committed"}]')
    assert report["cxl"] == {"memdevs": [{"memdev": "mem0", "serial": 1}], "ports": [],
                             "root_decoders": [{"decoder": "decoder0.0"}, {"decoder": "decoder0.1"}], "regions": [],
                             "setup": [{"number": 0, "action": "committed"}]}
    assert assemble(scripts, tmp_path)["cxl"] is None
