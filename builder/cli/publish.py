"""pmem-image export: make templates (qcow2, vmdk, ova, vhd, vhdx, gce) from an existing build, recorded in
its manifest.json, SHA256SUMS and packer-manifest.json like those build makes; pmem-image push: store a
build in an OCI registry, tagged by its build key (the binary cache `build --substitute` pulls from)."""

import argparse
import json
import os
from pathlib import Path

from ..build import binary_cache
from ..build.exports import export
from ..build.locks import BuildLock
from ..build.manifest import add_artifact
from ..knowledge.formats import FORMATS
from ..profile.errors import EXIT_OK, UsageError
from ..profile.sizes import human_size
from ..runner import Runner
from .targets import out_root, resolve_target


def cmd_export(args: argparse.Namespace) -> int:
    plan, directory = resolve_target(args)
    raw = directory / f"{plan.name}.raw"
    if not raw.exists():
        raise UsageError(f"no image at {raw}", f"build it first: pmem-image build {args.target}")
    runner = Runner()
    made = []
    # The profile's lock: no build of it swaps the directory away while the export reads and adds files.
    with BuildLock(directory.parent, plan.name):
        for name in dict.fromkeys(args.formats):
            artifact = export(plan, raw, name, directory, runner)
            add_artifact(directory, plan, artifact)
            made.append(artifact)
    if args.json:
        print(json.dumps({"exit_code": EXIT_OK, "artifacts": made}, indent=2))
    else:
        for artifact in made:
            print(f"{artifact['format']:<6} {directory / artifact['file']}  {human_size(artifact['size'])} "
                  f"(virtual {human_size(artifact['virtual_size'])}, {artifact['seconds']:.0f}s; boots on "
                  f"{artifact['bus']}: {artifact['platform']})")
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    directory = args.build if args.build.is_dir() else out_root(args) / args.build.name
    with BuildLock(directory.parent.absolute(), directory.name, shared=True):   # not swapped away while it is read
        reference = binary_cache.push(directory, args.repository, args.sign_key)
    pinned = binary_cache.pinned_reference(args.repository, reference.rsplit(":", 1)[1])
    print(json.dumps({"exit_code": EXIT_OK, "reference": reference, "pinned": pinned}, indent=2) if args.json else
          f"pushed {directory} as {reference}\n  pinned: {pinned}")
    return EXIT_OK


def add_parsers(commands, allow: argparse.ArgumentParser) -> None:
    export_ = commands.add_parser("export", parents=[allow], help="make VM/cloud templates from a build "
                                                                   "(recorded in its manifest)")
    export_.add_argument("target", type=Path, metavar="PROFILE|out/NAME")
    export_.add_argument("--format", dest="formats", action="append", required=True, choices=sorted(FORMATS),
                         help="the template format (repeat for several)")
    export_.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    export_.add_argument("--json", action="store_true", help="machine-readable result")
    export_.set_defaults(func=cmd_export)
    push = commands.add_parser("push", help="store a build in an OCI registry as an artifact tagged by its build "
                                            "key (the binary cache of build --substitute)")
    push.add_argument("build", type=Path, metavar="out/NAME")
    push.add_argument("repository", metavar="REGISTRY/REPO", help="e.g. 127.0.0.1:5000/pmem-image, ghcr.io/OWNER/images")
    push.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    push.add_argument("--json", action="store_true", help="machine-readable result")
    push.add_argument("--sign-key", type=Path, metavar="KEY", default=os.environ.get("PMEM_IMAGE_SIGNING_KEY"),
                      help="OpenSSH private key: sign the build key and manifest (ssh-keygen -Y sign)")
    push.set_defaults(func=cmd_push)
