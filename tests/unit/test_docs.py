"""The docs say what the code does: the generated pages match the model and the parser, every profile
shown is valid, every pmem-image command shown parses, every relative link leads somewhere, and the
README stays a front page."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from builder.cli.main import build_parser
from builder.cli.reference import BEGIN, END, fill, generated_blocks, stale_pages
from conftest import ROOT, plan_of_file

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A fragment of a profile shown on its own (no name:) is checked on top of this one.
BASE = {"name": "doc-example", "distribution": {"name": "debian", "release": "bookworm"}, "vm": {"memory": "6G"},
        "pmem": [{"size": "1G", "offset": "4G"}]}


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def _joined(lines: list[str]) -> list[str]:
    """Shell lines with their backslash-newline continuations joined, as the shell reads them."""
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line)
    return joined


def _shown_commands(text: str) -> list[str]:
    """Commands of fenced shell blocks and of indented blocks that run pmem-image."""
    lines = _joined([line for block in _code_blocks(text, "(?:sh|)") for line in block.splitlines()])
    indented, previous = [], ""
    for line in text.splitlines():       # an indented block's line, or a continuation of the one before
        if (line.startswith("    ") and not line.startswith("     ")) or \
                (line.startswith("     ") and previous.endswith("\\")):
            indented.append(line[4:])
        previous = line.rstrip() if line.startswith("    ") else ""
    lines += _joined(indented)
    return [line for line in lines if re.search(r"(^|\s|/)pmem-image\s", line)]


def _segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line: words split at &&, ||, ;, | and & outside quotes."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, "#"
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|"):
            segments.append([])
        else:
            segments[-1].append(token)
    return segments


def test_generated_pages_are_current():
    stale = [str(path.relative_to(ROOT)) for path in stale_pages()]
    assert not stale, f"{', '.join(stale)} no longer match the code: run ./scripts/docs and commit the result"


def test_a_page_without_its_markers_is_an_error_not_a_silent_skip():
    with pytest.raises(ValueError, match="markers"):
        fill("# no markers here\n", "commands", "text")
    page = f"head\n{BEGIN.format('x')}\nold\n{END.format('x')}\ntail\n"
    assert fill(page, "x", "new") == f"head\n{BEGIN.format('x')}\nnew\n{END.format('x')}\ntail\n"


def test_the_profile_reference_names_every_field_and_check():
    reference = generated_blocks()["profile-fields"][1]
    for path in ("`name`", "`pmem[].mode`", "`pmem[].label_size`", "`users[].ssh_authorized_keys`", "`disk.size`"):
        assert f"| {path} |" in reference
    assert "| `vm.memory` | size (`512M`, `1G`) | `4G` |" in reference
    assert "`check_ram_left_for_os`" in reference and "(nvdimm only)" in reference


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_profiles_shown_are_valid(page, tmp_path):
    for index, block in enumerate(_code_blocks(page.read_text(), "yaml")):
        shown = yaml.safe_load(block)
        profile = shown if "name" in shown else {**BASE, **shown}
        for tree in profile.get("extra_trees", []):
            (tmp_path / tree).mkdir(parents=True, exist_ok=True)
        path = tmp_path / f"example-{index}.yaml"
        path.write_text(yaml.safe_dump(profile))
        plan_of_file(path)                    # raises ProfileError, naming the field, when the example is wrong


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_shown_exist_and_parse(page, capsys):
    parser = build_parser()
    for line in _shown_commands(page.read_text()):
        for words in _segments(line):
            segment = " ".join(words)
            if not words or not words[0].endswith("pmem-image") or any(w.startswith("[") for w in words):
                continue                      # usage synopses ([-h] ...) are the parser's own text
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                pytest.fail(f"{page.name}: `{segment.strip()}` does not parse: {capsys.readouterr().err.strip()}")
            for word in words[1:]:
                if word.startswith("profiles/"):
                    assert (ROOT / word).exists(), f"{page.name}: `{segment.strip()}` names a missing {word}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_to_files(page):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "./pmem-image build --verify profiles/default.yaml" in readme and "./scripts/test" in readme
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"the README's map of docs/ lacks {page.name}"


def test_every_page_opens_with_what_it_covers():
    for page in sorted((ROOT / "docs").glob("*.md")):
        title, blank, first, *_ = page.read_text().splitlines()
        assert title.startswith("# ") and blank == "" and first and not first.startswith(("#", "|", "`")), page.name


def test_ci_runs_the_readmes_test_command():
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    assert Path(ROOT / "scripts" / "docs").stat().st_mode & 0o111


def test_shown_commands_join_continuations_and_split_only_outside_quotes():
    page = "    ./pmem-image test out/x -- sh -c \\\n        'cd a && make' && ./pmem-image plan p\n"
    (line,) = _shown_commands(page)
    assert _segments(line) == [["./pmem-image", "test", "out/x", "--", "sh", "-c", "cd a && make"],
                               ["./pmem-image", "plan", "p"]]
