from pathlib import Path

from builder.build.pipeline import build_key
from builder.knowledge.host import DEBIAN_SECURITY, find_debian_mirror
from builder.plan.planner import make_plan
from builder.profile.loader import read_profile
from builder.render.outputs import render
from conftest import PROFILES


def write(root: Path, name: str, text: str) -> None:
    (root / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


def test_deb822_sources(tmp_path: Path):
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
          "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n")
    mirror = find_debian_mirror(tmp_path)
    assert mirror.archive == "http://mirror.example/debian"
    assert mirror.security == "http://mirror.example/debian-security"


def test_one_line_sources_and_options(tmp_path: Path):
    write(tmp_path, "sources.list", "# x\ndeb [arch=amd64] http://m.example/debian bookworm main\n")
    mirror = find_debian_mirror(tmp_path)
    assert mirror.archive == "http://m.example/debian" and mirror.security == DEBIAN_SECURITY


def test_a_one_line_entry_with_several_bracketed_options_keeps_its_security_suite(tmp_path: Path):
    """`deb [arch=amd64 signed-by=...] URI bookworm-security main` once lost its URI to `signed-by=...]`."""
    write(tmp_path, "sources.list",
          "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian "
          "bookworm main\n"
          "deb [ arch=amd64  signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] "
          "http://sec.example/debian-security bookworm-security main\n")
    mirror = find_debian_mirror(tmp_path)
    assert mirror.archive == "http://m.example/debian" and mirror.security == "http://sec.example/debian-security"


def test_disabled_and_source_only_stanzas_are_not_mirrors(tmp_path: Path):
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
          "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
          "Types: deb\nURIs: http://on.example/debian\nSuites: bookworm\n")
    assert find_debian_mirror(tmp_path).archive == "http://on.example/debian"


def test_every_image_gets_its_security_suite_whatever_the_host_lists(tmp_path: Path):
    """A host without a security entry still renders the security suite (Debian's own archive), and the
    build key is the same on both hosts: what suites an image uses is the plan's, only URLs are the host's."""
    with_security, without = tmp_path / "a", tmp_path / "b"
    write(with_security, "sources.list", "deb http://m.example/debian bookworm main\n"
                                         "deb http://m.example/debian-security bookworm-security main\n")
    write(without, "sources.list", "deb http://m.example/debian bookworm main\n")
    profile, source = read_profile(PROFILES / "default.yaml")
    keys = set()
    for apt_dir in (with_security, without):
        plan, _ = make_plan(profile, str(PROFILES / "default.yaml"), source, find_debian_mirror(apt_dir))
        files = render(plan)
        sources = files["mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources"].content
        assert "Suites: bookworm-security" in sources
        keys.add(build_key(plan, files, "24.3"))
    assert len(keys) == 1


def test_no_debian_mirror(tmp_path: Path):
    write(tmp_path, "sources.list.d/other.sources", "Types: deb\nURIs: https://example/node\nSuites: nodistro\n")
    assert find_debian_mirror(tmp_path) is None


def test_hostile_uri_is_ignored(tmp_path: Path):
    write(tmp_path, "sources.list.d/x.sources", "URIs: http://a.example/debian;evil\nSuites: bookworm\n")
    assert find_debian_mirror(tmp_path) is None
