"""pmem-image clean, gc and diff: remove build outputs, trim the shared caches, compare two builds."""

import argparse
import json
import re
import shutil
from pathlib import Path

from ..build.caches import CACHES, gc, tree_size
from ..build.compare import compare, difference_json, difference_text, read_build
from ..build.instance_state import remove_state, rescue_legacy_state
from ..build.locks import BuildLock
from ..render.launch import instance_state
from ..profile.errors import EXIT_OK, EXIT_PROOF_FAILED, UsageError
from ..profile.model import NAME_PATTERN
from ..profile.sizes import human_size
from ..runner import Runner


def _outputs(out_root: Path) -> list[str]:
    return sorted(p.name for p in out_root.iterdir() if p.is_dir() and re.match(NAME_PATTERN, p.name)) \
        if out_root.is_dir() else []


def cmd_clean(args: argparse.Namespace, out_root: Path) -> int:
    """Remove out/NAME (and its failure logs) under the profile's lock: a running build is never cut.
    Per-instance state (NVDIMM data, the persistent run overlay) stays unless --state asks, by name."""
    names = args.names or _outputs(out_root)
    for name in names:
        if not re.match(NAME_PATTERN, name):
            raise UsageError(f"{name!r} is not an image name", "pass names as shown by ls out/")
    freed = 0
    for name in names:
        targets = [t for t in (out_root / name, out_root / f"{name}.failed") if t.is_dir()]
        if not targets and args.names and not (args.state and instance_state(out_root, name).is_dir()):
            raise UsageError(f"no build named {name} in {out_root}", f"builds there: {', '.join(_outputs(out_root))}")
        with BuildLock(out_root, name):
            rescue_legacy_state(out_root / name, out_root, name, print)
            for target in targets:
                freed += tree_size(target)
                shutil.rmtree(target)
            state = remove_state(out_root, name) if args.state else []
        print(f"removed {name} ({', '.join(t.name for t in targets) or 'nothing'})")
        if state:
            print(f"removed {name}'s instance state in {instance_state(out_root, name)}: {', '.join(state)}")
        elif instance_state(out_root, name).is_dir():
            print(f"kept {name}'s instance state (NVDIMM data, run overlay) in {instance_state(out_root, name)}; "
                  "clean --state removes it")
    print(f"freed {human_size(freed)}; caches are kept (pmem-image gc trims them)")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace, out_root: Path) -> int:
    trimmed = gc(out_root, Runner().say, args.locks)
    width = max(len(name) for name in CACHES)
    for item in trimmed:
        kept = f", kept {human_size(item.kept)} in use" if item.kept else ""
        print(f"{item.cache:<{width}}  freed {human_size(item.freed):>10}{kept}  ({CACHES[item.cache]})")
    print(f"freed {human_size(sum(t.freed for t in trimmed))} in all")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit 0 when the two builds are identical, 1 when they differ (as diff(1) does)."""
    a, b = read_build(args.a), read_build(args.b)
    difference = compare(a, b)
    print(json.dumps(difference_json(a, b, difference), indent=2) if args.json else difference_text(a, b, difference))
    return EXIT_OK if difference.identical else EXIT_PROOF_FAILED


def add_parsers(commands, out_option) -> None:
    clean = commands.add_parser("clean", help="remove build outputs (out/NAME); all of them without NAME")
    clean.add_argument("names", nargs="*", metavar="NAME")
    clean.add_argument("--state", action="store_true", help="also delete the images' instance state: NVDIMM "
                       "backing files (the lab's pmem data) and persistent run overlays, in OUT/.state/NAME")
    out_option(clean)
    clean.set_defaults(func=cmd_clean, needs_out=True)
    trim = commands.add_parser("gc", help="trim the shared caches (packages, kernel sources and builds, ccache), "
                                         "keeping the kernels, package layers and packages current outputs (and given locks) use")
    trim.add_argument("locks", type=Path, nargs="*", metavar="LOCK",
                      help="lock files whose packages stay (as store gc; the packages current outputs name stay too)")
    out_option(trim)
    trim.set_defaults(func=cmd_gc, needs_out=True)
    diff = commands.add_parser("diff", help="are two builds identical? if not: which artifacts, packages, "
                                            "partition fields and files differ (exit 0 identical, 1 different)")
    diff.add_argument("a", type=Path, metavar="A", help="out/NAME directory or a contents.json")
    diff.add_argument("b", type=Path, metavar="B", help="out/NAME directory or a contents.json")
    diff.add_argument("--json", action="store_true", help="machine-readable result")
    diff.set_defaults(func=cmd_diff)
