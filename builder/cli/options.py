"""Options build and verify share (what the proof boot does, where outputs are, how many at once), and
the argument types that refuse what is not a count or a duration (exit 2 with the reason)."""

import argparse
from pathlib import Path

from ..knowledge.formats import FORMATS


def _positive_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def add_verify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    parser.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto",
                        help="auto: KVM if a probe boot works, else TCG")
    parser.add_argument("--timeout", type=_positive_seconds, help="seconds to wait for the guest's report")
    parser.add_argument("--fast", action="store_true",
                        help="boot the disk's kernel, initrds and command line directly (-kernel), without the "
                             "firmware's disk boot and GRUB: every row but the boot path's; plain verify proves those")
    parser.add_argument("--warm-reboot", action="store_true",
                        help="also write a seeded pattern to each pmem mount, reboot warm, and check it survived")
    parser.add_argument("--power-cycle", action="store_true",
                        help="seed each pmem mount, power off, boot the same disk in a new QEMU process and check "
                             "(nvdimm and virtio-pmem keep the data; memmap pmem is RAM and loses it, as it should)")
    parser.add_argument("--state", type=Path, metavar="DIR",
                        help="nvdimm, virtio-pmem: boot on the pmem backing files in DIR (default: new ones for this run); "
                             "refused for plans with devdax regions, whose proof writes at the device's start")
    parser.add_argument("--format", dest="export_format", choices=sorted(FORMATS),
                        help="boot this export (made by build or export) on its platform's disk bus, not the raw disk")
    parser.add_argument("--cloud-init", action="store_true",
                        help="provision it from a NoCloud seed, log in as that user, boot again (cloud_init: true)")
    parser.add_argument("--json", action="store_true", help="machine-readable result")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write the proof as JUnit XML (a testcase "
                                                                   "per check, a testsuite per image)")
    parser.add_argument("--keep-going", action="store_true", help="several profiles: go on past a failed one "
                                                                  "(the exit code is still the first failure's)")
    parser.add_argument("--jobs", type=_positive_count, metavar="N", help="several profiles: N at once (default: what this "
                                                              "machine allows, one build per 2 CPUs and 8 GiB)")
