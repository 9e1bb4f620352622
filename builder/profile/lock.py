"""PROFILE.lock: the exact package set a profile was built with (every package of the image, of the build
overlay and of the default initrd, with version, architecture and the sha256 of its package file), the kernel source's sha256 and
the tool versions. Written by `pmem-image lock` from a build; read beside the profile by every command."""

import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import Problem, ProfileError

LOCK_VERSION = 1


class LockedPackage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9+.-]*$")
    version: str = Field(pattern=r"^[A-Za-z0-9.+~:-]+$")
    architecture: str = Field(pattern=r"^[a-z0-9-]+$")
    scope: Literal["image", "build", "initrd"]   # in the image, else in mkosi's build overlay, else in the initrd
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class PackageLock(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lock_version: Literal[1]
    name: str
    distribution: str
    release: str
    renderer_version: str
    mkosi_version: str
    kernel_sha256: Optional[str]
    packages: list[LockedPackage]


def lock_path(profile: Path) -> Path:
    """default.yaml -> default.lock, beside it."""
    return profile.with_suffix(".lock")


def read_lock(profile: Path) -> Optional[PackageLock]:
    """The profile's lock, None when it has none; a lock that does not parse is bad input (exit 2)."""
    path = lock_path(profile)
    return load_lock(path) if path.exists() else None


def load_lock(path: Path) -> PackageLock:
    try:
        return PackageLock.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError) as error:
        first = str(error).splitlines()[0][:200]
        raise ProfileError(str(path), [Problem((), f"not a pmem-image lock file: {first}",
                                               "write it again: pmem-image lock PROFILE (after a build)")]) from None


def lock_text(lock: PackageLock) -> str:
    return json.dumps(lock.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
