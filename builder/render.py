"""Plan -> {relative path: file}: the mkosi 24.3 project, rendered with jinja2 (pure).

Every interpolated value passes through the escaping of the file it lands in, so no profile
value can add a mkosi setting, an fstab line or a shell command.
"""

import functools
import re
from importlib import resources
import shlex
from dataclasses import dataclass
from typing import Callable

import jinja2

from .plan import Plan

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHELL_WORD = re.compile(r"^[A-Za-z0-9_./=:@%+,!-]+$")


class RenderError(Exception):
    pass


class ShellQuoted(str):
    """Text already quoted for a POSIX shell."""


def _mkosi_value(value: object) -> str:
    text = str(value)
    if _CONTROL.search(text) or "#" in text or ";" in text:
        raise RenderError(f"value {text!r} cannot be written to mkosi.conf ('#', ';' and control characters)")
    return text.replace("%", "%%")


def _plain_field(value: object) -> str:
    text = str(value)
    if _CONTROL.search(text) or not text or any(c.isspace() for c in text):
        raise RenderError(f"value {text!r} cannot be written as a single field")
    return text


def _shell_checked(value: object) -> str:
    if isinstance(value, ShellQuoted) or _SHELL_WORD.match(str(value)):
        return str(value)
    raise RenderError(f"value {value!r} reaches a shell script unquoted; use the shell filter")


def _shell(value: object) -> ShellQuoted:
    return ShellQuoted(shlex.quote(str(value)))


def _shell_words(values: list) -> ShellQuoted:
    return ShellQuoted(" ".join(shlex.quote(str(v)) for v in values))


@dataclass(frozen=True)
class RenderedFile:
    content: str
    executable: bool = False


@dataclass(frozen=True)
class _Output:
    template: str
    path: str
    finalize: Callable[[object], str]
    executable: bool = False


_OUTPUTS = (
    _Output("mkosi.conf.j2", "mkosi.conf", _mkosi_value),
    _Output("mkosi.sources.j2", "mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources", _plain_field),
    _Output("fstab.j2", "mkosi.extra/etc/fstab", _plain_field),
    _Output("pmem-mkfs@.service.j2", "mkosi.extra/usr/lib/systemd/system/pmem-mkfs@.service", _plain_field),
    _Output("pmem-mkfs.sh.j2", "mkosi.extra/usr/lib/pmem-image/pmem-mkfs", _shell_checked, executable=True),
    _Output("modules-load.conf.j2", "mkosi.extra/etc/modules-load.d/pmem-image.conf", _plain_field),
    _Output("kernel-cmdline.j2", "mkosi.extra/etc/kernel/cmdline", _plain_field),
    _Output("grub.cfg.j2", "mkosi.extra/etc/default/grub.d/pmem-image.cfg", _shell_checked),
    _Output("pmem-selftest.service.j2", "mkosi.extra/usr/lib/systemd/system/pmem-selftest.service", _plain_field),
    _Output("pmem-selftest.sh.j2", "mkosi.extra/usr/lib/pmem-image/pmem-selftest", _shell_checked, executable=True),
    _Output("selftest-preset.j2", "mkosi.extra/usr/lib/systemd/system-preset/50-pmem-image.preset", _plain_field),
    _Output("mkosi.build.chroot.j2", "mkosi.build.chroot", _shell_checked, executable=True),
    _Output("mkosi.finalize.j2", "mkosi.finalize", _shell_checked, executable=True),
)
FLUSH_TEST_SOURCE = "native/pmem-flush-test.c"
FLUSH_TEST_CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"]


@functools.cache
def _environment(finalize: Callable[[object], str]) -> jinja2.Environment:
    """One environment per escaping rule, kept so templates compile once per process."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("builder", "templates"), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False, finalize=finalize)
    env.filters["shell"] = _shell
    env.filters["shell_words"] = _shell_words
    return env


def _wanted(output: _Output, plan: Plan) -> bool:
    if output.template == "mkosi.sources.j2":
        return plan.mirror is not None
    if output.template.startswith("pmem-mkfs"):
        return any(region.mkfs for region in plan.regions)
    return True


def flush_test_source() -> str:
    return (resources.files("builder") / FLUSH_TEST_SOURCE).read_text(encoding="utf-8")


def render(plan: Plan) -> dict[str, RenderedFile]:
    """The whole mkosi project for a plan; byte-identical for an identical plan."""
    context = {"plan": plan, "regions": plan.regions, "cmdline": plan.kernel_cmdline,
               "mirror": plan.mirror, "release": plan.release, "cflags": FLUSH_TEST_CFLAGS}
    files = {}
    for output in _OUTPUTS:
        if not _wanted(output, plan):
            continue
        text = _environment(output.finalize).get_template(output.template).render(context)
        files[output.path] = RenderedFile(text if text.endswith("\n") else text + "\n", output.executable)
    # The flush test's source is compiled by mkosi.build.chroot inside the build overlay.
    files["src/pmem-flush-test.c"] = RenderedFile(flush_test_source())
    return dict(sorted(files.items()))
