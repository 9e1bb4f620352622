"""Checks of what a template needs: export formats named once, cloud-init with a way in."""

from typing import Iterable

from ..profile.errors import Problem
from .checks import CheckContext, check


@check
def check_formats_named_once(ctx: CheckContext) -> Iterable[Problem]:
    seen: set[str] = set()
    for index, name in enumerate(ctx.profile.formats):
        if name in seen:
            yield Problem(("formats", index), f"{name} is listed twice", "name each format once")
        seen.add(name)


@check
def check_cloud_init_has_ssh(ctx: CheckContext) -> Iterable[Problem]:
    if ctx.profile.cloud_init and not ctx.profile.ssh:
        yield Problem(("cloud_init",), "cloud-init makes users with SSH keys, but the image has no SSH server",
                      "add ssh: true", severity="warning")
