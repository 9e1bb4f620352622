"""Facts read from the build host at the edge of the pipeline (the plan records them)."""

import re
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict

from .distros import RELEASES


class AptMirror(BaseModel):
    model_config = ConfigDict(frozen=True)
    archive: str
    security: Optional[str] = None


class Snapshot(BaseModel):
    """A dated package snapshot (profile `mirror: snapshot:...`): every suite, security included, as the
    distribution's snapshot service had it then. Part of the plan's identity: it pins the packages."""
    model_config = ConfigDict(frozen=True)
    stamp: str                    # 20261101T000000Z, as the services write it in their URLs
    archive: str
    security: str
    keyring: str


# Debian's and Ubuntu's snapshot services (old Release files there have expired: Check-Valid-Until: no).
SNAPSHOT_SERVICES = {
    "debian": ("https://snapshot.debian.org/archive/debian/{stamp}/",
               "https://snapshot.debian.org/archive/debian-security/{stamp}/",
               "/usr/share/keyrings/debian-archive-keyring.gpg"),
    "ubuntu": ("https://snapshot.ubuntu.com/ubuntu/{stamp}/", "https://snapshot.ubuntu.com/ubuntu/{stamp}/",
               "/usr/share/keyrings/ubuntu-archive-keyring.gpg"),
}


def snapshot_sources(distribution: str, when: str) -> Optional[Snapshot]:
    """`snapshot:2026-11-01T00:00:00Z` -> the sources of that moment (None where there is no service)."""
    if distribution not in SNAPSHOT_SERVICES:
        return None
    stamp = when.removeprefix("snapshot:").replace("-", "").replace(":", "")
    archive, security, keyring = SNAPSHOT_SERVICES[distribution]
    return Snapshot(stamp=stamp, archive=archive.format(stamp=stamp), security=security.format(stamp=stamp),
                    keyring=keyring)


# The suites that identify a Debian archive mirror: every Debian release pmem-image knows.
_DEBIAN_SUITES = {r.release for r in RELEASES if r.distribution == "debian"}
_URI_RE = re.compile(r"^[a-z]+://[A-Za-z0-9._~:/?@!&'()*+,=%\[\]-]+$")


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current = [], {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
        elif not line.startswith("#") and ":" in line and not line[0].isspace():
            key, _, value = line.partition(":")
            current[key.strip().lower()] = value.strip()
    return stanzas


def find_debian_mirror(apt_dir: Path = Path("/etc/apt")) -> Optional[AptMirror]:
    """The Debian archive (and security) URIs already configured on this host, if any."""
    archive = security = None
    sources = sorted((apt_dir / "sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in _deb822_stanzas(path.read_text(errors="replace")):
            uris = stanza.get("uris", "").split()
            suites = stanza.get("suites", "").split()
            if not uris or not _URI_RE.match(uris[0]):
                continue
            if archive is None and any(s in _DEBIAN_SUITES for s in suites):
                archive = uris[0]
            if security is None and any(s.endswith("-security") for s in suites):
                security = uris[0]
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and _URI_RE.match(words[1]):
                if archive is None and words[2] in _DEBIAN_SUITES:
                    archive = words[1]
                if security is None and words[2].endswith("-security"):
                    security = words[1]
    return AptMirror(archive=archive, security=security) if archive else None
