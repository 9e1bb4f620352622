"""Facts read from the build host at the edge of the pipeline (the plan records them)."""

import re
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict

from .distros import RELEASES


# Where the host lists no security archive, images still get their security updates, from Debian's own.
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"


class AptMirror(BaseModel):
    """The host's Debian mirror. Only the URLs come from the host: which suites an image uses (security
    always included) is the plan's, so two hosts with differently written apt files build the same image."""
    model_config = ConfigDict(frozen=True)
    archive: str
    security: str = DEBIAN_SECURITY


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
# A one-line entry: `deb [opt=a opt2=b ...] URI SUITE COMPONENT...`; the options are one bracketed group,
# which may hold spaces.
_ONE_LINE_RE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s*)?(?P<uri>\S+)\s+(?P<suite>\S+)")


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
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
            enabled = stanza.get("enabled", "yes").lower() not in ("no", "false", "0")
            if not uris or not _URI_RE.match(uris[0]) or "deb" not in stanza.get("types", "").split() \
                    or not enabled:
                continue
            if archive is None and any(s in _DEBIAN_SUITES for s in suites):
                archive = uris[0]
            if security is None and any(s.endswith("-security") for s in suites):
                security = uris[0]
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            entry = _ONE_LINE_RE.match(line)
            if entry is None or not _URI_RE.match(entry["uri"]):
                continue
            if archive is None and entry["suite"] in _DEBIAN_SUITES:
                archive = entry["uri"]
            if security is None and entry["suite"].endswith("-security"):
                security = entry["uri"]
    if archive is None:
        return None
    return AptMirror(archive=archive, security=security) if security else AptMirror(archive=archive)
