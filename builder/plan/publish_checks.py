"""Checks of what a template needs: export formats named once, cloud-init with a way in; and of where
its packages come from (a snapshot that exists)."""

import calendar
import time
from typing import Iterable

from ..knowledge.host import SNAPSHOT_SERVICES

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
    if ctx.profile.cloud_init and not ctx.profile.wants_ssh:
        yield Problem(("cloud_init",), "cloud-init makes users with SSH keys, but the image has no SSH server",
                      "drop ssh: false (cloud-init images get SSH by default)", severity="warning")


@check
def check_snapshot(ctx: CheckContext) -> Iterable[Problem]:
    mirror = ctx.profile.mirror
    if mirror is None:
        return
    if ctx.profile.distribution.name not in SNAPSHOT_SERVICES:
        yield Problem(("mirror",), f"{ctx.profile.distribution.name} has no snapshot service pmem-image knows "
                      "(Debian and Ubuntu do)", "drop mirror")
        return
    try:
        when = time.strptime(mirror.removeprefix("snapshot:"), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        yield Problem(("mirror",), f"{mirror} is not a real date and time", "e.g. snapshot:2026-11-01T00:00:00Z")
        return
    if calendar.timegm(when) > time.time():
        yield Problem(("mirror",), f"{mirror} is in the future: no snapshot has that moment yet",
                      "use a moment in the past")
