"""Escaping per sink: each rendered file type gets a jinja2 finalize that refuses what its syntax cannot
hold, so no profile value can add a mkosi setting, an fstab line or a shell command."""

import re
import shlex

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHELL_WORD = re.compile(r"^[A-Za-z0-9_./=:@%+,!-]+$")


class RenderError(Exception):
    pass


class ShellQuoted(str):
    """Text already quoted for a POSIX shell."""


def mkosi_value(value: object) -> str:
    text = str(value)
    if _CONTROL.search(text) or "#" in text or ";" in text:
        raise RenderError(f"value {text!r} cannot be written to mkosi.conf ('#', ';' and control characters)")
    return text.replace("%", "%%")


def plain_field(value: object) -> str:
    text = str(value)
    if _CONTROL.search(text) or not text or any(c.isspace() for c in text):
        raise RenderError(f"value {text!r} cannot be written as a single field")
    return text


def shell_checked(value: object) -> str:
    if isinstance(value, ShellQuoted) or _SHELL_WORD.match(str(value)):
        return str(value)
    raise RenderError(f"value {value!r} reaches a shell script unquoted; use the shell filter")


def shell(value: object) -> ShellQuoted:
    return ShellQuoted(shlex.quote(str(value)))


def shell_words(values: list) -> ShellQuoted:
    return ShellQuoted(" ".join(shlex.quote(str(v)) for v in values))
