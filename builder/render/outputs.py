"""Plan -> {relative path: file}: the mkosi 24.3 project, rendered with jinja2 (pure).

One table says, for every output, its template, where it lands, the escaping of its sink, its mode,
when it is wanted, and whether its content depends on the build host (the host's apt mirror), in
which case the build key leaves it out: the same profile on another machine is the same build.
"""

import functools
from dataclasses import dataclass
from typing import Callable

import jinja2

from ..knowledge.initrd import initrd_module_patterns
from ..native import FLUSH_TEST_CFLAGS, PMDK_CHECK_LIBS, flush_test_source, pmdk_check_source
from ..plan.backends import backend_for
from ..plan.backends.cxl import devices as cxl_devices
from ..plan.model import Plan
from .escaping import mkosi_value, plain_field, shell, shell_checked, shell_words


@dataclass(frozen=True)
class RenderedFile:
    content: str
    executable: bool = False
    host_specific: bool = False   # differs between build hosts for the same plan (not in the build key)


def _always(plan: Plan) -> bool:
    return True


def _has_mkfs(plan: Plan) -> bool:
    return any(region.mkfs for region in plan.regions)


def _has_cxl(plan: Plan) -> bool:
    return plan.pmem_backend == "cxl"


def _reconfigures_namespaces(plan: Plan) -> bool:
    return any(region.reconfigure for region in plan.regions)


def _has_mirror(plan: Plan) -> bool:
    return plan.mirror is not None or plan.snapshot is not None


def _has_apt_lock(plan: Plan) -> bool:
    return bool(plan.locked_packages) and plan.distribution in ("debian", "ubuntu")


def _has_accounts(plan: Plan) -> bool:
    return bool(plan.users or plan.root_ssh_keys)


def _has_ssh(plan: Plan) -> bool:
    return plan.ssh


def _has_ssh_users(plan: Plan) -> bool:
    return plan.ssh and bool(plan.users)


def _has_users(plan: Plan) -> bool:
    return bool(plan.users)


def _has_pmdk(plan: Plan) -> bool:
    return plan.pmdk


def _has_cloud_init(plan: Plan) -> bool:
    return plan.cloud_init


def _has_dhcp(plan: Plan) -> bool:
    return plan.network == "dhcp" and plan.network_service == "systemd-networkd"   # NetworkManager needs no file


def _has_disk_size(plan: Plan) -> bool:
    return plan.disk_size is not None


def _has_bios_partition(plan: Plan) -> bool:
    return plan.disk_size is not None and plan.bios_bootloader


@dataclass(frozen=True)
class _Output:
    template: str
    path: str
    finalize: Callable[[object], str]
    executable: bool = False
    wanted: Callable[[Plan], bool] = _always
    host_specific: bool = False


_EXTRA = "mkosi.extra"
_OUTPUTS = (
    _Output("mkosi.conf.j2", "mkosi.conf", mkosi_value),
    _Output("mkosi.initrd.conf.j2", "mkosi.initrd.conf", mkosi_value),
    _Output("mkosi.sources.j2", "mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources", plain_field,
            wanted=_has_mirror, host_specific=True),
    _Output("lock-preferences.j2", "mkosi.pkgmngr/etc/apt/preferences.d/pmem-image-lock.pref", plain_field,
            wanted=_has_apt_lock),
    _Output("fstab.j2", f"{_EXTRA}/etc/fstab", plain_field),
    _Output("hosts.j2", f"{_EXTRA}/etc/hosts", plain_field),
    _Output("pmem-mkfs@.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-mkfs@.service", plain_field,
            wanted=_has_mkfs),
    _Output("pmem-mkfs.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-mkfs", shell_checked, executable=True,
            wanted=_has_mkfs),
    _Output("modules-load.conf.j2", f"{_EXTRA}/etc/modules-load.d/pmem-image.conf", plain_field),
    _Output("kernel-cmdline.j2", f"{_EXTRA}/etc/kernel/cmdline", plain_field),
    _Output("pmem-selftest.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-selftest.service", plain_field),
    _Output("pmem-selftest.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-selftest", shell_checked, executable=True),
    _Output("pmem-report.jq.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-report.jq", plain_field),
    _Output("selftest-preset.j2", f"{_EXTRA}/usr/lib/systemd/system-preset/50-pmem-image.preset", plain_field),
    _Output("pmem-ready.target.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-ready.target", plain_field),
    _Output("pmem-ready-notice.sh.j2", f"{_EXTRA}/etc/profile.d/pmem-ready.sh", plain_field),
    _Output("pmem-test.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-test.service", plain_field),
    _Output("pmem-test.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-test", shell_checked, executable=True),
    _Output("pmem-layout-guard.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-layout-guard", shell_checked,
            executable=True),
    _Output("pmem-layout-guard.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-layout-guard.service",
            plain_field),
    _Output("pmem-cxl-regions.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-cxl-regions", shell_checked,
            executable=True, wanted=_has_cxl),
    _Output("pmem-cxl-regions.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-cxl-regions.service", plain_field,
            wanted=_has_cxl),
    _Output("pmem-namespaces.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-namespaces", shell_checked,
            executable=True, wanted=_reconfigures_namespaces),
    _Output("pmem-namespaces.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-namespaces.service", plain_field,
            wanted=_reconfigures_namespaces),
    _Output("pmem-access.rules.j2", f"{_EXTRA}/usr/lib/udev/rules.d/60-pmem-image-access.rules", plain_field,
            wanted=_has_users),
    _Output("pmem-access.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-access", shell_checked, executable=True,
            wanted=_has_users),
    _Output("pmem-access.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-access.service", plain_field,
            wanted=_has_users),
    _Output("pmdk-testconfig.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmdk-testconfig", shell_checked,
            executable=True, wanted=_has_pmdk),
    _Output("pmdk-testconfig.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-pmdk-testconfig.service",
            plain_field, wanted=_has_pmdk),
    _Output("mkosi.build.chroot.j2", "mkosi.build.chroot", shell_checked, executable=True),
    _Output("mkosi.finalize.j2", "mkosi.finalize", shell_checked, executable=True),
    _Output("mkosi.postinst.chroot.j2", "mkosi.postinst.chroot", shell_checked, executable=True,
            wanted=_has_accounts),
    _Output("ssh-keygen.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-ssh-keygen.service", plain_field,
            wanted=_has_ssh),
    _Output("pmem-session-key.sh.j2", f"{_EXTRA}/usr/lib/pmem-image/pmem-session-key", shell_checked,
            executable=True, wanted=_has_ssh_users),
    _Output("pmem-session-key.service.j2", f"{_EXTRA}/usr/lib/systemd/system/pmem-session-key.service", plain_field,
            wanted=_has_ssh_users),
    _Output("sshd-pmem-image.conf.j2", f"{_EXTRA}/etc/ssh/sshd_config.d/pmem-image.conf", plain_field,
            wanted=_has_ssh),
    _Output("cloud-init-pmem-image.cfg.j2", f"{_EXTRA}/etc/cloud/cloud.cfg.d/90-pmem-image.cfg", plain_field,
            wanted=_has_cloud_init),
    _Output("network-dhcp.network.j2", f"{_EXTRA}/etc/systemd/network/80-pmem-image-dhcp.network", plain_field,
            wanted=_has_dhcp),
    _Output("repart-esp.conf.j2", "mkosi.repart/00-esp.conf", plain_field, wanted=_has_disk_size),
    _Output("repart-bios.conf.j2", "mkosi.repart/05-bios.conf", plain_field, wanted=_has_bios_partition),
    _Output("repart-root.conf.j2", "mkosi.repart/10-root.conf", plain_field, wanted=_has_disk_size),
)


@functools.cache
def _environment(finalize: Callable[[object], str]) -> jinja2.Environment:
    """One environment per escaping rule, kept so templates compile once per process."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("builder.render", "templates"), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False, finalize=finalize)
    env.filters["shell"] = shell
    env.filters["shell_words"] = shell_words
    return env


def render(plan: Plan) -> dict[str, RenderedFile]:
    """The whole mkosi project for a plan; byte-identical for an identical plan."""
    context = {"plan": plan, "regions": plan.regions, "reconfigures": _reconfigures_namespaces(plan),
               "cxl_devices": cxl_devices(plan) if plan.cxl else [],
               "proof_store_size": backend_for(plan.pmem_backend).proof_store_size,
               "cmdline": plan.kernel_cmdline,
               "initrd_module_patterns": initrd_module_patterns(plan.initrd_modules, plan.root_filesystem,
                                                                ["nd_pmem", "nd_e820"], plan.module_suffix),
               "mirror": plan.mirror, "release": plan.release, "cflags": FLUSH_TEST_CFLAGS,
               "pmdk_libs": PMDK_CHECK_LIBS, "pins": {p.name: f"={p.version}" for p in plan.locked_packages}}
    files = {}
    for output in _OUTPUTS:
        if not output.wanted(plan):
            continue
        text = _environment(output.finalize).get_template(output.template).render(context)
        files[output.path] = RenderedFile(text if text.endswith("\n") else text + "\n", output.executable,
                                          output.host_specific)
    # The native sources are compiled by mkosi.build.chroot inside the build overlay.
    files["src/pmem-flush-test.c"] = RenderedFile(flush_test_source())
    if plan.pmdk:
        files["src/pmem-pmdk-check.c"] = RenderedFile(pmdk_check_source())
    return dict(sorted(files.items()))
