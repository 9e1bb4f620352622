from pathlib import Path

from builder.knowledge.host import find_debian_mirror


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
    assert mirror.archive == "http://m.example/debian" and mirror.security is None


def test_no_debian_mirror(tmp_path: Path):
    write(tmp_path, "sources.list.d/other.sources", "Types: deb\nURIs: https://example/node\nSuites: nodistro\n")
    assert find_debian_mirror(tmp_path) is None


def test_hostile_uri_is_ignored(tmp_path: Path):
    write(tmp_path, "sources.list.d/x.sources", "URIs: http://a.example/debian;evil\nSuites: bookworm\n")
    assert find_debian_mirror(tmp_path) is None
