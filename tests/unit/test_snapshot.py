"""A profile's dated package snapshot: rendered as the image's package sources for every suite, security
included (mkosi 24.3 would add the live security archive otherwise), part of the plan's identity; checked
here without reaching the snapshot service."""

import pytest

from builder.profile.errors import ProfileError
from builder.render.outputs import render
from conftest import plan_of_text

SOURCES = "mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources"


def profile(distribution: str, release: str, mirror: str = "snapshot:2026-11-01T00:00:00Z") -> str:
    return (f"name: snap\ndistribution: {{name: {distribution}, release: {release}}}\nmirror: {mirror}\n"
            "pmem:\n  - {size: 1G, offset: 4G}\n")


def stanzas(text: str) -> list[dict]:
    blocks = [b for b in text.split("\n\n") if "Types:" in b]
    return [dict(line.split(": ", 1) for line in b.splitlines() if ": " in line and not line.startswith("#"))
            for b in blocks]


def test_debian_snapshot_covers_every_suite_and_security():
    plan, _ = plan_of_text(profile("debian", "trixie"))
    main, security = stanzas(render(plan)[SOURCES].content)
    assert main["URIs"] == "https://snapshot.debian.org/archive/debian/20261101T000000Z/"
    assert main["Suites"].split() == ["trixie", "trixie-updates"]
    assert security == {"Types": "deb", "URIs": "https://snapshot.debian.org/archive/debian-security/20261101T000000Z/",
                        "Suites": "trixie-security", "Components": "main", "Check-Valid-Until": "no",
                        "Signed-By": "/usr/share/keyrings/debian-archive-keyring.gpg"}
    assert main["Check-Valid-Until"] == "no" and "deb.debian.org" not in render(plan)[SOURCES].content


def test_ubuntu_snapshot_uses_its_service_and_keyring():
    plan, _ = plan_of_text(profile("ubuntu", "noble"))
    main, security = stanzas(render(plan)[SOURCES].content)
    assert main["URIs"] == security["URIs"] == "https://snapshot.ubuntu.com/ubuntu/20261101T000000Z/"
    assert main["Signed-By"] == "/usr/share/keyrings/ubuntu-archive-keyring.gpg"
    assert security["Suites"] == "noble-security"


def test_the_snapshot_is_part_of_the_identity():
    a = plan_of_text(profile("debian", "trixie"))[0]
    b = plan_of_text(profile("debian", "trixie", "snapshot:2026-10-01T00:00:00Z"))[0]
    live = plan_of_text(profile("debian", "trixie").replace("mirror: snapshot:2026-11-01T00:00:00Z\n", ""))[0]
    assert len({a.digest(), b.digest(), live.digest()}) == 3


@pytest.mark.parametrize("distribution, release, mirror, says", [
    ("fedora", "43", "snapshot:2026-11-01T00:00:00Z", "fedora has no snapshot service"),
    ("debian", "trixie", "snapshot:2999-01-01T00:00:00Z", "is in the future"),
    ("debian", "trixie", "snapshot:2026-13-01T00:00:00Z", "is not a real date and time"),
    ("debian", "trixie", "http://deb.debian.org/debian", "is not allowed here"),
])
def test_snapshots_that_cannot_be_had_are_refused(distribution, release, mirror, says):
    with pytest.raises(ProfileError, match=says):
        plan_of_text(profile(distribution, release, mirror))
