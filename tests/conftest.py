import json
import time
import os
import re
import subprocess
from pathlib import Path

import pytest

from builder.build.locks import hold_log
from builder.knowledge.host import AptMirror
from builder.profile.loader import profile_from_text, read_profile
from builder.profile.lock import read_lock
from builder.plan.planner import make_plan

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"
FIXTURES = Path(__file__).resolve().parent / "profiles"
GOLDEN = Path(__file__).resolve().parent / "golden"
TEST_MIRROR = AptMirror(archive="http://deb.debian.org/debian", security="http://deb.debian.org/debian-security")
PMEM_IMAGE = ROOT / ".venv" / "bin" / "pmem-image"


def plan_of_text(text: str, filename: str = "test.yaml"):
    profile, source = profile_from_text(text, filename)
    return make_plan(profile, filename, source, TEST_MIRROR)


def plan_of_file(path: Path):
    profile, source = read_profile(path)
    return make_plan(profile, str(path), source, TEST_MIRROR, lock=read_lock(path))


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.*)$", path.read_text(), re.M)


@pytest.fixture
def out_root(tmp_path: Path) -> Path:
    return tmp_path / "out"


ROOT_PARTITION_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"     # x86-64 root (discoverable partitions)


def root_filesystem(image: Path) -> tuple[str, int]:
    """A raw image's root filesystem as debugfs opens it ("image?offset=N") and the partition's size."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    root = next(p for p in table["partitions"] if p["type"] == ROOT_PARTITION_TYPE)
    sector = table.get("sectorsize", 512)
    return f"{image}?offset={root['start'] * sector}", root["size"] * sector


def debugfs(source: str, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, source], capture_output=True, text=True).stdout


# The stand-in mkosi for tests of the build's edges (seconds, no root): unit/test_build_safety.py and others.
FAKE_MKOSI = r"""#!/bin/sh
# Stand-in for mkosi 24.3: writes <name>.raw etc. into --output-dir; FAKE_MKOSI_MODE=ok|fail|hang.
[ "$1" = "--version" ] && { echo "mkosi 24.3"; exit 0; }
echo "$*" > "$FAKE_MKOSI_STATE/args"
while [ $# -gt 0 ]; do
  case "$1" in -C) project=$2; shift ;; --output-dir) out=$2; shift ;; --package-cache-dir) cache=$2; shift ;;
    --cache-dir) layer=$2; shift ;; esac
  shift
done
name=$(sed -n 's/^ImageId=//p' "$project/mkosi.conf")
echo "$$" > "$FAKE_MKOSI_STATE/pid"
# The incremental cache (--cache-dir): packages are installed once, then the cached tree is copied.
if [ -n "${layer:-}" ] && [ -e "$layer/debian~x86-64.manifest" ]; then echo "‣ Copying cached trees"
else echo "‣ Installing Debian"; fi
[ "$name" = "${FAKE_MKOSI_FAIL_NAME:-}" ] && { echo "E: Unable to locate package nonsense"; exit 1; }
case "$FAKE_MKOSI_MODE" in
  fail) echo "E: Unable to locate package nonsense"; echo "‣ Something broke"; exit 1 ;;
  hang) touch "$FAKE_MKOSI_STATE/started"; sleep 60 ;;
  slow) date +%s.%N > "$FAKE_MKOSI_STATE/$name.start"; sleep 1; date +%s.%N > "$FAKE_MKOSI_STATE/$name.end" ;;
esac
printf 'disk-%s' "$FAKE_MKOSI_TAG" > "$out/$name.raw"
# FAKE_MKOSI_RAW_BYTES: a disk that big (zeros after the tag), failing as mkosi would when there is no room.
if [ -n "${FAKE_MKOSI_RAW_BYTES:-}" ]; then
  head -c "$FAKE_MKOSI_RAW_BYTES" /dev/zero >> "$out/$name.raw" 2>/dev/null ||
    { echo "‣ Writing the disk image"; echo "E: $out/$name.raw: No space left on device"; exit 1; }
fi
# What the rendered mkosi.finalize hands over: the image kernel's config (FAKE_KERNEL_CONFIG).
cp "$FAKE_KERNEL_CONFIG" "$out/kernel-config-6.1.0-fake"
echo vmlinuz > "$out/$name.vmlinuz"; echo initrd > "$out/$name.initrd"
# Packages: every name Packages= and BuildPackages= ask for, at FAKE_PACKAGE_VERSION (pins are not obeyed,
# as a mirror that moved on would not), each with a package file in the cache (FAKE_DEB_SALT changes its bytes).
version=${FAKE_PACKAGE_VERSION:-1.0}
mkdir -p "$cache/cache/apt/archives"
listed() { awk -v key="$1" '$0 ~ "^" key "=" {f=1; next} /^[A-Za-z#]/ {f=0} f && NF {sub(/=.*/, "", $1); print $1}' "$project/mkosi.conf"; }
for package in $(listed Packages) $(listed BuildPackages); do
  printf '%s %s %s' "$package" "$version" "${FAKE_DEB_SALT:-}" > "$cache/cache/apt/archives/${package}_${version}_amd64.deb"
done
listed Packages | awk -v v="$version" 'BEGIN {printf "{\"packages\": ["} {printf "%s{\"type\": \"deb\", \"name\": \"%s\", \"version\": \"%s\", \"architecture\": \"amd64\"}", (NR > 1 ? ", " : ""), $1, v} END {print "]}"}' > "$out/$name.manifest"
listed BuildPackages | awk -v v="$version" '{printf "%s\t%s\tamd64\n", $1, v}' > "$out/build-packages.tsv"
if [ -n "${layer:-}" ]; then
  # The default initrd's tree in the layer keeps its dpkg database: one package only the initrd has.
  mkdir -p "$layer/debian~x86-64~default-initrd.cache/var/lib/dpkg"
  printf 'Package: lvm2\nStatus: install ok installed\nVersion: %s\nArchitecture: amd64\n\n' "$version" \
    > "$layer/debian~x86-64~default-initrd.cache/var/lib/dpkg/status"
  printf 'lvm2 %s' "$version" > "$cache/cache/apt/archives/lvm2_${version}_amd64.deb"
  echo '{}' > "$layer/debian~x86-64.manifest"
fi
ln -s "$name.raw" "$out/$name"
echo "‣ $out/$name.raw size is 1.9G"
"""
# The stand-in disk has no partition table: sfdisk reports an empty GPT for it (contents.json records that).
FAKE_SFDISK = r"""#!/bin/sh
echo '{"partitiontable": {"label": "gpt", "id": "FAKE", "device": "'"$2"'", "unit": "sectors", "sectorsize": 512, "partitions": []}}'
"""


@pytest.fixture
def env(tmp_path: Path) -> dict:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    (bin_dir / "mkosi").write_text(FAKE_MKOSI)
    (bin_dir / "mkosi").chmod(0o755)
    (bin_dir / "sfdisk").write_text(FAKE_SFDISK)
    (bin_dir / "sfdisk").chmod(0o755)
    config = tmp_path / "kernel.config"
    config.write_text("".join(f"CONFIG_{s}={v}\n" for s, v in plan_of_file(PROFILES / "default.yaml")[0]
                              .kernel_options.items()))
    return {**os.environ, "FAKE_KERNEL_CONFIG": str(config), "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_MKOSI_STATE": str(state),
            "FAKE_MKOSI_MODE": "ok", "FAKE_MKOSI_TAG": "1", "PMEM_IMAGE_OUT": str(tmp_path / "out"),
            "PMEM_IMAGE_TOOLS": str(bin_dir)}


# The CLI with its root check stubbed out: with the stand-in mkosi nothing needs root, so this suite runs
# for any user (the check itself is tested below).
CLI_WITHOUT_ROOT_CHECK = ("import sys, builder.build.mkosi as m; m.require_root = lambda: None; "
                          "from builder.cli.main import main; sys.exit(main(sys.argv[1:]))")


# Tier times for CI's summary (.ci/run): each test's setup + call + teardown, added up by the tier its markers
# put it in (the same split scripts/test makes), plus the session's wall clock.
_TIER_SECONDS: dict[str, float] = {}
_TIER_TESTS: dict[str, set] = {}


def _tier(item_keywords) -> str:
    return "boot" if "boot" in item_keywords else "integration" if "integration" in item_keywords else "unit"


def pytest_runtest_logreport(report):
    tier = _tier(report.keywords)
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration
    _TIER_TESTS.setdefault(tier, set()).add(report.nodeid)


# The boot tier's output root, and the build lock its builds take turns on (tests/boot/cli.py), under the shared
# cache, which the host-matrix trees see at their own out/.cache. The lock logs each hold beside itself: what
# was built, how long it waited and held the lock; the builds take turns, so their sum bounds the tier's wall
# clock from below.
BOOT_OUT = ROOT / "out" / "test"
BUILD_LOCK = BOOT_OUT / ".cache" / "boot-tier-build.lock"
BUILD_LOCK_LOG = hold_log(BUILD_LOCK)


def pytest_sessionstart(session):
    session.config._pmem_image_started = time.monotonic()
    if not hasattr(session.config, "workerinput"):      # the xdist controller, or a run without workers
        BUILD_LOCK_LOG.unlink(missing_ok=True)


def _build_lock_lines(terminalreporter) -> None:
    try:
        holds = [json.loads(line) for line in BUILD_LOCK_LOG.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return
    if not holds:
        return
    terminalreporter.section("build lock (boot tier)")
    terminalreporter.write_line(f"{len(holds)} holds: held {sum(h['held'] for h in holds) / 60:.1f} min, "
                                f"waited {sum(h['waited'] for h in holds) / 60:.1f} min in all")
    for hold in sorted(holds, key=lambda h: -h["held"])[:15]:
        terminalreporter.write_line(f"{hold['held']:7.0f} s held {hold['waited']:6.0f} s waited  "
                                    f"{hold['what'] or '?'} (ended {hold['ended']})")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _TIER_SECONDS:
        return
    wall = time.monotonic() - config._pmem_image_started
    terminalreporter.section("tier times")
    for tier in ("unit", "integration", "boot"):
        if tier in _TIER_SECONDS:
            terminalreporter.write_line(f"{tier:<12} {len(_TIER_TESTS[tier]):4d} tests {_TIER_SECONDS[tier] / 60:6.1f} min")
    terminalreporter.write_line(f"{'all':<12} {sum(map(len, _TIER_TESTS.values())):4d} tests {wall / 60:6.1f} min "
                                "(wall clock)")
    _build_lock_lines(terminalreporter)
