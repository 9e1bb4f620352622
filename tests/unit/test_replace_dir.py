"""replace_dir swaps a build's output in one step (review L2), and what an older, killed one left is removed."""

import os

from builder.build import tree
from builder.build.tree import remove_leftovers, replace_dir


def test_the_new_tree_takes_the_place_of_the_old_in_one_exchange(tmp_path, monkeypatch):
    old, new = tmp_path / "default", tmp_path / ".staging-default-x" / "result"
    old.mkdir()
    (old / "default.raw").write_text("old")
    new.mkdir(parents=True)
    (new / "default.raw").write_text("new")
    renames = []
    monkeypatch.setattr(tree.os, "rename", lambda *a: renames.append(a) or os.rename(*a))
    replace_dir(new, old)
    assert (old / "default.raw").read_text() == "new" and not new.exists()
    assert renames == [], "two renames: out/default was missing between them"


def test_without_an_existing_output_it_is_a_rename(tmp_path):
    new, destination = tmp_path / "new", tmp_path / "default"
    new.mkdir()
    (new / "f").write_text("x")
    replace_dir(new, destination)
    assert (destination / "f").read_text() == "x" and not new.exists()


def test_leftovers_of_a_killed_two_rename_replace_are_removed_and_nothing_else(tmp_path):
    for name in (".default.old.abc", ".default.old.def", ".default-resized.old.x", "default"):
        (tmp_path / name / "tree").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / ".default.old.link").symlink_to(outside)
    remove_leftovers(tmp_path, "default")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".default-resized.old.x", ".default.old.link", "default",
                                                          "outside"]
