"""The package layer: mkosi's incremental cache (the image tree after package installation, the build
overlay with the build packages, and the default initrd's tree), kept under out/.cache/layers/KEY/.

KEY hashes what decides that tree and nothing else: the distribution and release, the package lists
(with a lock's pins), the package sources and apt preferences, the initrd's include file, the mkosi and
pmem-image versions. Not the profile's name, memory layout, command line, users or files: a profile that
changes only those (or another profile with the same packages) reuses the layer, and the image is still
bit-identical to a cold build, because a cold build also installs into the layer and copies it out.
Without a lock or a snapshot the layer keeps the package versions of the build that made it, until
`build --cold` (or `pmem-image gc`) drops it: the README says so.
"""

import hashlib
import json
import shutil
from pathlib import Path

from .. import __version__
from ..plan.model import Plan
from ..render.outputs import RenderedFile
from .mkosi import tools_dir
from .toolchain import toolchain

LAYERS = "layers"
# Rendered files that reach the package layer: apt's sources and preferences (copied into the tree before
# apt runs) and the initrd's configuration (its own cached tree).
_LAYER_FILES = ("mkosi.pkgmngr/", "mkosi.initrd.conf")


def layer_key(plan: Plan, files: dict[str, RenderedFile], mkosi_version: str) -> str:
    pins = {p.name: p.version for p in plan.locked_packages}
    inputs = {
        "pmem-image": __version__, "mkosi": mkosi_version, "tools": toolchain(tools_dir()),
        "distribution": plan.distribution, "release": plan.release,
        "packages": [f"{p}={pins.get(p, '')}" for p in plan.packages],
        "build_packages": [f"{p}={pins.get(p, '')}" for p in plan.build_packages],
        "files": {path: [int(f.executable), f.content] for path, f in sorted(files.items())
                  if path.startswith(_LAYER_FILES)},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def layers_root(out_root: Path) -> Path:
    return out_root / ".cache" / LAYERS


def layer_dir(out_root: Path, key: str) -> Path:
    return layers_root(out_root) / key[:32]


def layer_is_built(directory: Path) -> bool:
    """mkosi writes its cache manifest last, after the trees are in place."""
    return any(directory.glob("*.manifest"))


def drop_layer(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
