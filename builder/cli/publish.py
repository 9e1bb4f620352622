"""pmem-image export: make templates (qcow2, vmdk, ova, vhd, vhdx, gce) from an existing build, recorded in
its manifest.json, SHA256SUMS and packer-manifest.json like those build makes."""

import argparse
import json
from pathlib import Path

from ..build.exports import export
from ..build.locks import BuildLock
from ..build.manifest import add_artifact
from ..knowledge.formats import FORMATS
from ..profile.errors import EXIT_OK, UsageError
from ..profile.sizes import human_size
from ..runner import Runner
from .targets import resolve_target


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


def add_parsers(commands, allow: argparse.ArgumentParser) -> None:
    export_ = commands.add_parser("export", parents=[allow], help="make VM/cloud templates from a build "
                                                                   "(recorded in its manifest)")
    export_.add_argument("target", type=Path, metavar="PROFILE|out/NAME")
    export_.add_argument("--format", dest="formats", action="append", required=True, choices=sorted(FORMATS),
                         help="the template format (repeat for several)")
    export_.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    export_.add_argument("--json", action="store_true", help="machine-readable result")
    export_.set_defaults(func=cmd_export)
