"""Load a profile: YAML text -> (data, where each key and value stands) -> Profile or ProfileError."""

import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from pydantic import BaseModel, ValidationError

from .errors import Problem, ProfileError
from .model import Profile, WrittenNumber

Mark = tuple[int, int]  # 1-based line, column


@dataclass(frozen=True)
class SourceMap:
    """Where each field path was written: its key (for unknown keys) and its value."""

    keys: dict[tuple, Mark]
    values: dict[tuple, Mark]

    def locate(self, problem: Problem, prefer_key: bool = False) -> Problem:
        path = tuple(problem.path)
        tables = (self.keys, self.values) if prefer_key else (self.values, self.keys)
        while True:
            for table in tables:
                if path in table:
                    return problem.located(*table[path])
            if not path:
                return problem
            path = path[:-1]


# libyaml's parser where PyYAML has it (the wheels do): ~5x faster, the same nodes and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def parse_yaml(text: str) -> tuple[object, SourceMap, list[Problem]]:
    """Parse YAML keeping positions; duplicate and non-string keys become problems."""
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    keys: dict[tuple, Mark] = {}
    values: dict[tuple, Mark] = {}
    problems: list[Problem] = []
    seen: set[int] = set()

    def build(node: yaml.Node, path: tuple) -> object:
        # An alias is the same node object met again: refused, so a recursive alias cannot recurse and an
        # alias bomb cannot expand (a profile is short; anchors buy nothing here).
        if id(node) in seen:
            where = keys.get(path) or values.get(path[:-1]) or _mark(node)   # the alias's key, not its anchor
            problems.append(Problem(path, "YAML anchors and aliases (&name, *name) are not supported",
                                    "write the value out in full").located(*where))
            return None
        seen.add(id(node))
        values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            result: dict = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    problems.append(Problem(path, f"key {key!r} is not a name", "keys are words like size or offset")
                                    .located(*_mark(key_node)))
                    continue
                if key in result:
                    problems.append(Problem(path + (key,), f"key {key!r} appears twice",
                                            "keep one of them").located(*_mark(key_node)))
                    continue
                keys[path + (key,)] = _mark(key_node)
                result[key] = build(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [build(item, path + (index,)) for index, item in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:float":
            return WrittenNumber(node.value)   # as written: 6.10 stays 6.10 where a name is wanted
        return loader.construct_object(node, deep=True)

    data = build(root, ()) if root is not None else None
    return data, SourceMap(keys, values), problems


def _model_at(path: tuple) -> Optional[type[BaseModel]]:
    """The pydantic model that owns the keys at `path` (for suggesting valid keys)."""
    model: object = Profile
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = model.model_fields[part].annotation
        while typing.get_origin(model) in (list, typing.Union, typing.Optional) or \
                str(typing.get_origin(model)) == "types.UnionType":
            model = next(a for a in typing.get_args(model) if a is not type(None))
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _problem_from_pydantic(error: Mapping[str, Any]) -> tuple[Problem, bool]:
    """A pydantic error as a Problem; the flag says whether it points at a key."""
    path = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
    kind, message = error["type"], error["msg"].removeprefix("Value error, ")
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        owner = _model_at(path[:-1])
        valid = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(path[-1]), valid, n=1, cutoff=0.5)
        hint = (f"did you mean {close[0]!r}? " if close else "") + (f"valid keys: {', '.join(valid)}" if valid else "")
        return Problem(path, f"unknown key {path[-1]!r}", hint), True
    if kind == "missing":
        owner = _model_at(path[:-1])
        description = owner.model_fields[path[-1]].description if owner and path[-1] in owner.model_fields else ""
        return Problem(path, "required key is missing", description or ""), True
    hint = _field_hint(path) or _PATTERN_HINTS.get(field, "")
    if kind == "string_pattern_mismatch":
        return Problem(path, f"{error['input']!r} is not allowed here", hint), False
    if kind == "literal_error":
        return Problem(path, message, "choose one of the listed values"), False
    return Problem(path, message, hint), False


def _field_hint(path: tuple) -> str:
    """The hint a field declares itself (json_schema_extra={"hint": ...}), on the field or its list items:
    users[0].name and name need different hints, so the model says, not a table keyed by bare names."""
    names = [p for p in path if isinstance(p, str)]
    key_path = path[: max(i for i, p in enumerate(path) if isinstance(p, str)) + 1] if names else ()
    owner = _model_at(key_path[:-1])
    info = owner.model_fields.get(key_path[-1]) if owner and key_path else None
    if info is None:
        return ""
    extras = [info.json_schema_extra] + [m.json_schema_extra for arg in typing.get_args(info.annotation)
                                         for m in getattr(arg, "__metadata__", ()) if hasattr(m, "json_schema_extra")]
    for extra in extras:
        if isinstance(extra, dict) and extra.get("hint"):
            return extra["hint"]
    return ""


_PATTERN_HINTS = {
    "name": "use lowercase letters, digits and '-', starting with a letter or digit (at most 63)",
    "description": "one line of text without control characters",
    "release": "a release name or number such as bookworm, noble, 41 or 9",
    "version": "a kernel version such as 6.1 or 6.1.192",
    "fragments": "a fragment file name from kernel-fragments/ without .config",
    "cmdline": "one kernel argument per item: letters, digits and _ . , : = / + @ ! % -; "
               "no spaces, quotes, '#', ';', '$' or backslashes",
    "mountpoint": "an absolute path of letters, digits, '_', '.', '-' such as /mnt/pmem0",
    "memmap": "the kernel's SIZE!OFFSET form, e.g. 1G!4G",
    "sha256": "64 lowercase hex digits, in quotes (YAML reads an all-digit value as a number)",
    "url": "an http(s) URL or a path of letters, digits, '.', '_', '-' and '/'",
    "path": "a path of letters, digits, '.', '_', '-' and '/'",
    "size": "e.g. 1G or 512M (binary units)",
    "offset": "e.g. 4G (binary units)",
    "memory": "e.g. 4G (binary units)",
    "mirror": "snapshot:YYYY-MM-DDTHH:MM:SSZ (UTC), e.g. snapshot:2026-11-01T00:00:00Z; leave it out for this "
              "host's mirror",
}


def profile_from_text(text: str, filename: str) -> tuple[Profile, SourceMap]:
    """Validate YAML text as a Profile, or raise ProfileError listing every shape problem."""
    try:
        data, source, problems = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = Problem((), f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                          "fix the YAML syntax (indentation, ':' after keys, quotes)")
        if mark is not None:
            problem = problem.located(mark.line + 1, mark.column + 1)
        raise ProfileError(filename, [problem]) from None
    if not isinstance(data, dict):
        raise ProfileError(filename, [Problem((), "a profile is a mapping of keys (name, distribution, pmem, ...)",
                                              "see profiles/default.yaml").located(1, 1)])
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problem, at_key = _problem_from_pydantic(error)
            problems.append(source.locate(problem, prefer_key=at_key))
        profile = None
    if problems or profile is None:
        raise ProfileError(filename, sort_problems(problems))
    return profile, source


def sort_problems(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def read_profile(path: Path) -> tuple[Profile, SourceMap]:
    filename = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(filename, [Problem((), "no such file",
                                              "check the path; shipped profiles are in profiles/")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(filename, [Problem((), f"cannot read: {exc}", "pass a readable UTF-8 YAML file")]) from None
    return profile_from_text(text, filename)
