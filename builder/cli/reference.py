"""The generated parts of docs/: the profile reference from the pydantic model and the checks registered
over it, the commands page from the argparse parser. Each page keeps its hand-written prose; only the
text between its BEGIN/END GENERATED markers is written here, so the docs cannot drift from the code
(tests/unit/test_docs.py fails when a page is stale; `./scripts/docs` rewrites them).
"""

import argparse
import ast
import inspect
import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ..plan import planner  # noqa: F401  (imports every module that registers checks)
from ..plan.checks import all_checks
from ..profile.model import Profile
from ..profile.sizes import format_size, parse_size

DOCS = Path(__file__).resolve().parents[2] / "docs"
BEGIN, END = "<!-- BEGIN GENERATED: {} (./scripts/docs) -->", "<!-- END GENERATED: {} -->"
_CONSTRAINTS = ("pattern", "min_length", "max_length", "ge", "le", "gt", "lt")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _is_size(annotation: Any, metadata: tuple = ()) -> bool:
    """A Size field (bytes written as 1G); pydantic moves a plain field's Annotated metadata to the FieldInfo."""
    if any(getattr(m, "func", None) is parse_size for m in (*metadata, *getattr(annotation, "__metadata__", ()))):
        return True
    return get_origin(annotation) in (Union, types.UnionType) and any(_is_size(a) for a in get_args(annotation))


def _type_name(annotation: Any, metadata: tuple = ()) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if _is_size(annotation, metadata):
        return "size (`512M`, `1G`)"
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is not None and hasattr(annotation, "__metadata__"):      # Annotated[...]
        return _type_name(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation)).replace("WrittenNumber", "str")


def _constraints(field: FieldInfo) -> list[str]:
    found: list[str] = []
    annotations = [field] + [a for a in get_args(field.annotation) if hasattr(a, "__metadata__")]
    for holder in annotations:
        for item in getattr(holder, "metadata", []) or getattr(holder, "__metadata__", ()):
            for name in _CONSTRAINTS:
                value = getattr(item, name, None)
                if value is not None:
                    found.append(f"{name} `{value}`")
    return found


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()     # type: ignore[call-arg]
        return "(see below)" if isinstance(value, BaseModel) else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "**required**"
    if _is_size(field.annotation, tuple(field.metadata)) and isinstance(field.default, int):
        return f"`{format_size(field.default)}`"
    return f"`{field.default!r}`" if not isinstance(field.default, BaseModel) else "(see below)"


def _inner_model(annotation: Any) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (model := _inner_model(arg)) is not None:
            return model
    return None


def _field_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo]]:
    rows: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        rows.append((path, field))
        inner = _inner_model(field.annotation)
        if inner is not None:
            is_list = get_origin(field.annotation) is list
            rows.extend(_field_rows(inner, f"{path}[]." if is_list else f"{path}."))
    return rows


def _checked_fields(check: Any) -> set[str]:
    """The top-level profile fields a check's problems point at (the first name in each Problem path)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(check)))
    fields: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Problem" and node.args:
            path = node.args[0]
            if isinstance(path, ast.Tuple) and path.elts and isinstance(path.elts[0], ast.Constant):
                fields.add(str(path.elts[0].value))
    return fields


def _checks_by_field() -> dict[str, list[str]]:
    by_field: dict[str, list[str]] = {}
    for check, backend in all_checks():
        label = f"`{check.__name__}`" + (f" ({' and '.join(backend)} only)" if backend else "")
        for field in sorted(_checked_fields(check)):
            by_field.setdefault(field, []).append(label)
    return by_field


def profile_reference() -> str:
    checks = _checks_by_field()
    lines = ["| field | type | default | description and limits |", "|---|---|---|---|"]
    for path, field in _field_rows(Profile):
        limits = _constraints(field)
        text = (field.description or "") + (f" Limits: {', '.join(limits)}." if limits else "")
        lines.append(f"| `{path}` | {_type_name(field.annotation, tuple(field.metadata))} | {_cell(_default(field))} | {_cell(text)} |")
    lines += ["", "Checks that relate a field to others (kernel, RAM layout, backend), by the top-level field they "
              "report on; each is a named function registered with `@check` under `builder/plan/`:", ""]
    lines += [f"- `{field}`: {', '.join(names)}" for field, names in sorted(checks.items())]
    return "\n".join(lines)


def _option_text(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(f"`{o}`" for o in action.option_strings)
    if action.nargs == 0:
        return names
    value = action.metavar or ("{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper())
    return f"{names} `{value}`"


def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", helps.get(name) or "", sub))
                found.extend(_subcommands(sub, f"{prefix}{name} "))
    return found


def commands_reference(parser: argparse.ArgumentParser) -> str:
    lines: list[str] = []
    for name, summary, sub in _subcommands(parser, ""):
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            lines += [f"### `pmem-image {name}`", "", summary, ""]
            continue
        usage = re.sub(r"\s+", " ", sub.format_usage().replace("usage: ", "").strip())
        lines += [f"### `pmem-image {name}`", "", summary + ("" if not sub.description else f". {sub.description}"),
                  "", f"    {usage}", ""]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            what = action.help or ("" if action.option_strings else "positional")
            lines.append(f"- {_option_text(action)}" + (f": {what}" if what else ""))
        lines.append("")
    return "\n".join(lines).rstrip()


def generated_blocks() -> dict[str, tuple[Path, str]]:
    from .main import build_parser
    return {"profile-fields": (DOCS / "profile-reference.md", profile_reference()),
            "commands": (DOCS / "commands.md", commands_reference(build_parser()))}


def fill(page: str, block: str, content: str) -> str:
    """The page with the text between its markers for BLOCK replaced; a page without them is an error."""
    begin, end = BEGIN.format(block), END.format(block)
    if begin not in page or end not in page:
        raise ValueError(f"the page has no {begin} ... {end} markers")
    head, rest = page.split(begin, 1)
    return f"{head}{begin}\n{content}\n{end}{rest.split(end, 1)[1]}"


def updated_pages() -> dict[Path, str]:
    """The pages whose generated text differs from the code's, with what they should say."""
    updated: dict[Path, str] = {}
    for block, (path, content) in generated_blocks().items():
        page = path.read_text()
        if (filled := fill(page, block, content)) != page:
            updated[path] = filled
    return updated


def stale_pages() -> list[Path]:
    return list(updated_pages())


def main() -> int:
    for path, text in updated_pages().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
