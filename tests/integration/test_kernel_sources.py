"""The four kernel sources up to a verified, unpacked tree: a tarball served on 127.0.0.1 (sha256 checked
before unpacking), a local tarball, a local tree, and Debian's linux-source package."""

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from builder.build.kernel_sources import KernelError, check_version, makefile_version, obtain_source
from builder.runner import Runner
from conftest import plan_of_text

pytestmark = pytest.mark.integration
MAKEFILE = b"# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 5\nEXTRAVERSION =\n"


def make_tarball(path: Path) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("linux-6.1.5/Makefile", MAKEFILE), ("linux-6.1.5/Kconfig", b"mainmenu \"x\"\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.fixture
def served(tmp_path):
    """A tarball on a local HTTP server (loopback only)."""
    root = tmp_path / "www"
    root.mkdir()
    sha = make_tarball(root / "linux-6.1.5.tar.gz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/linux-6.1.5.tar.gz", sha
    server.shutdown()


def plan_for(kernel: str, tmp_path: Path):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"name: k\ndistribution: {{name: debian, release: bookworm}}\nkernel: {kernel}\n"
                       "pmem: [{memmap: 1G!4G}]\n")
    return plan_of_text(profile.read_text(), str(profile))[0]


def test_tarball_from_url_is_verified_then_unpacked(served, tmp_path):
    url, sha = served
    plan = plan_for(f"{{source: tarball, version: '6.1.5', url: '{url}', sha256: {sha}}}", tmp_path)
    source, identity = obtain_source(plan, tmp_path / "cache", Runner())
    assert identity == sha and makefile_version(source) == (6, 1, 5) and source.name == "linux-6.1.5"
    check_version(makefile_version(source), plan.kernel_version, str(source))
    again, _ = obtain_source(plan, tmp_path / "cache", Runner())     # cached: no second download
    assert again == source


def test_tarball_with_the_wrong_sha256_is_never_unpacked(served, tmp_path):
    url, _ = served
    plan = plan_for(f"{{source: tarball, version: '6.1', url: '{url}', sha256: \"{'0' * 64}\"}}", tmp_path)
    with pytest.raises(KernelError, match="sha256 is .* the profile says 0000") as caught:
        obtain_source(plan, tmp_path / "cache", Runner())
    assert "nothing was unpacked" in caught.value.hint
    assert not (tmp_path / "cache" / "kernel-src").exists()
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_unreachable_url_is_a_clear_error(tmp_path):
    plan = plan_for(f"{{source: tarball, version: '6.1', url: 'http://127.0.0.1:9/linux.tar.gz', sha256: \"{'1' * 64}\"}}",
                    tmp_path)
    with pytest.raises(KernelError, match="cannot download http://127.0.0.1:9/linux.tar.gz"):
        obtain_source(plan, tmp_path / "cache", Runner())


def test_local_tarball_relative_to_the_profile(tmp_path):
    sha = make_tarball(tmp_path / "linux.tar.gz")
    plan = plan_for(f"{{source: tarball, version: '6.1', url: linux.tar.gz, sha256: {sha}}}", tmp_path)
    assert plan.kernel_url == str(tmp_path / "linux.tar.gz")
    source, _ = obtain_source(plan, tmp_path / "cache", Runner())
    assert makefile_version(source) == (6, 1, 5)


def test_local_tree_and_a_version_mismatch(tmp_path):
    tree = tmp_path / "src" / "linux"
    tree.mkdir(parents=True)
    (tree / "Makefile").write_bytes(MAKEFILE)
    plan = plan_for("{source: tree, version: '6.2', path: src/linux}", tmp_path)
    source, identity = obtain_source(plan, tmp_path / "cache", Runner())
    assert source == tree and len(identity) == 64
    with pytest.raises(KernelError, match="is Linux 6.1.5, the profile says kernel.version 6.2"):
        check_version(makefile_version(source), plan.kernel_version, str(source))
    (tree / "Makefile").write_bytes(MAKEFILE.replace(b"SUBLEVEL = 5", b"SUBLEVEL = 6"))
    assert obtain_source(plan, tmp_path / "cache", Runner())[1] != identity   # identity follows the content


def test_missing_tree_and_not_a_kernel(tmp_path):
    plan = plan_for("{source: tree, version: '6.1', path: nowhere}", tmp_path)
    with pytest.raises(KernelError, match="does not exist"):
        obtain_source(plan, tmp_path / "cache", Runner())
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(KernelError, match="has no Makefile"):
        makefile_version(tmp_path / "nowhere")


def test_debian_linux_source_package(tmp_path):
    plan = plan_for("{source: debian-source, version: '6.1'}", tmp_path)
    source, identity = obtain_source(plan, tmp_path / "cache", Runner())
    version = makefile_version(source)
    assert version[:2] == (6, 1) and version[2] > 0 and len(identity) == 64
    check_version(version, "6.1", str(source))


def test_a_tarball_without_one_top_directory_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("linux-6.1.5/Makefile", "stray-file"):
            info = tarfile.TarInfo(name)
            info.size = len(MAKEFILE)
            archive.addfile(info, io.BytesIO(MAKEFILE))
    (tmp_path / "linux.tar.gz").write_bytes(buffer.getvalue())
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    plan = plan_for(f"{{source: tarball, version: '6.1', url: linux.tar.gz, sha256: {sha}}}", tmp_path)
    with pytest.raises(KernelError, match="does not unpack to one top directory"):
        obtain_source(plan, tmp_path / "cache", Runner())
    assert [p for p in (tmp_path / "cache" / "kernel-src").iterdir()] == []


def test_tarball_owners_and_modes_are_not_kept(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("linux-6.1.5/Makefile")
        info.size, info.mode, info.uid, info.gid = len(MAKEFILE), 0o6777, 4321, 4321
        archive.addfile(info, io.BytesIO(MAKEFILE))
    (tmp_path / "linux.tar.gz").write_bytes(buffer.getvalue())
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    plan = plan_for(f"{{source: tarball, version: '6.1', url: linux.tar.gz, sha256: {sha}}}", tmp_path)
    source, _ = obtain_source(plan, tmp_path / "cache", Runner())
    stat = (source / "Makefile").stat()
    assert stat.st_uid == 0 and not stat.st_mode & 0o6000     # no setuid/setgid, no foreign owner


def test_kernel_paths_outside_the_profile_need_the_command_lines_consent(tmp_path, capsys):
    from builder.cli.main import main
    home = tmp_path / "profiles"
    home.mkdir()
    profile = home / "p.yaml"
    profile.write_text("name: k\ndistribution: {name: debian, release: bookworm}\n"
                       "kernel: {source: tree, version: '6.1', path: ../../..}\npmem: [{memmap: 1G!4G}]\n")
    assert main(["validate", str(profile)]) == 2
    assert "is outside the profile's directory" in capsys.readouterr().err
    assert main(["validate", "--allow-path", str(tmp_path.parent.parent), str(profile)]) == 0
    profile.write_text(profile.read_text().replace("path: ../../..", "path: src"))
    (home / "src").symlink_to("/etc")                     # a link out of the directory is out
    assert main(["validate", str(profile)]) == 2
    profile.write_text("name: k\ndistribution: {name: debian, release: bookworm}\nkernel: {source: tarball, "
                       f"version: '6.1', url: /etc/shadow, sha256: \"{'0' * 64}\"}}\npmem: [{{memmap: 1G!4G}}]\n")
    assert main(["validate", str(profile)]) == 2


HOSTILE_MAKEFILE = """VERSION = 6
PATCHLEVEL = 1
SUBLEVEL = 5
tinyconfig olddefconfig:
\tid -u > $(O)/uid
\t-touch /etc/written-by-a-kernel-makefile 2>/dev/null && echo wrote-etc >> $(O)/escapes || true
\t-cat /etc/shadow >/dev/null 2>&1 && echo read-shadow >> $(O)/escapes || true
\t-ls /root >/dev/null 2>&1 && echo read-root >> $(O)/escapes || true
\t-touch $(CURDIR)/in-the-source 2>/dev/null && echo wrote-source >> $(O)/escapes || true
\tip -o link 2>/dev/null | grep -vq ' lo:' && echo network >> $(O)/escapes || true
\tmktemp >/dev/null 2>&1 || echo no-writable-tmp >> $(O)/escapes
\ttouch $(O)/.config
"""


def test_a_kernels_own_build_code_runs_sandboxed(tmp_path):
    """A profile's kernel tree runs its Makefile as an unprivileged user that can write only its build
    directory (and a private /tmp, which compilers need): not /etc, not the source, no root-only files, no
    network."""
    from builder.build.kernel import configure
    tree = tmp_path / "src" / "linux"
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    (tree / "Makefile").write_text(HOSTILE_MAKEFILE)
    merge = tree / "scripts" / "kconfig" / "merge_config.sh"
    merge.write_text("#!/bin/sh\nid -u >> \"$3.merge-uid\" 2>/dev/null || id -u > /dev/null\n")
    merge.chmod(0o755)
    plan = plan_for("{source: tree, version: '6.1', path: src/linux}", tmp_path)
    build = tmp_path / "cache" / "kernel-build" / "x"
    configure(plan, tree, build, Runner(), tmp_path / "log")
    assert (build / "uid").read_text().strip() == "65534"
    assert not (build / "escapes").exists(), (build / "escapes").read_text()
    assert not Path("/etc/written-by-a-kernel-makefile").exists() and not (tree / "in-the-source").exists()
