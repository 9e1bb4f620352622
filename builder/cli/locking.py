"""pmem-image lock and store gc: pin a profile to the exact packages its build got (PROFILE.lock beside it),
and trim the package store (mkosi's package cache under out/.cache/) to what builds and locks name."""

import argparse
import json
from pathlib import Path

from ..build.caches import trim_package_store
from ..build.lock import make_lock
from ..build.manifest import read_manifest
from ..build.mkosi import mkosi_version, package_cache_dir, package_store
from ..profile.errors import EXIT_OK, UsageError
from ..profile.lock import lock_path, lock_text
from ..profile.sizes import human_size
from ..runner import Runner
from .targets import load_plan, out_root


def cmd_lock(args: argparse.Namespace) -> int:
    plan, _ = load_plan(args.profile, tuple(args.allow_path))
    directory = out_root(args) / plan.name
    built = read_manifest(directory)
    if built is None or built.get("plan_hash") != plan.digest():
        raise UsageError(f"{directory} is not a build of {args.profile} as it is now",
                         f"build it first: pmem-image build {args.profile}")
    lock = make_lock(plan, directory, package_cache_dir(out_root(args), plan), mkosi_version(Runner()))
    target = lock_path(args.profile)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(lock_text(lock))
    partial.replace(target)
    scopes = [p.scope for p in lock.packages]
    print(json.dumps({"exit_code": EXIT_OK, "lock": str(target), "packages": len(scopes)}, indent=2) if args.json else
          f"locked {args.profile} in {target}: {scopes.count('image')} image and {scopes.count('build')} build "
          f"packages, each with its version and package file sha256")
    return EXIT_OK


def cmd_store_gc(args: argparse.Namespace) -> int:
    out = out_root(args)
    store = trim_package_store(out, args.locks)
    print(f"package store {package_store(out)}: removed {store.removed} file(s) no build or lock names, "
          f"freed {human_size(store.freed)}; kept {store.kept}")
    return EXIT_OK


def add_parsers(commands, allow) -> None:
    lock = commands.add_parser("lock", parents=[allow], help="pin a profile to the packages its build got "
                                                             "(PROFILE.lock beside it; later builds get exactly those)")
    lock.add_argument("profile", type=Path, metavar="PROFILE")
    lock.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    lock.add_argument("--json", action="store_true", help="machine-readable result")
    lock.set_defaults(func=cmd_lock)
    store = commands.add_parser("store", help="the package store (mkosi's package cache under out/.cache/)")
    actions = store.add_subparsers(dest="action", required=True)
    gc = actions.add_parser("gc", help="remove package files that no build under out/ and no given lock names")
    gc.add_argument("locks", type=Path, nargs="*", metavar="LOCK", help="lock files whose packages stay")
    gc.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    gc.set_defaults(func=cmd_store_gc)
