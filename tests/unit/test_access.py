"""Access fields: validated before a build, rendered so that hostile values reach no shell, unit or file."""

from pathlib import Path

import pytest

from builder.profile.errors import ProfileError
from builder.render.outputs import render
from builder.verify.boot_request import BootRequest, qemu_argv
from builder.verify.session import banner, login_user, run_dir, ssh_argv
from conftest import plan_of_text

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dev@laptop"
BASE = "name: t\ndistribution: {name: debian, release: bookworm}\npmem:\n  - {size: 1G, offset: 4G}\n"


def plan(extra: str, filename: str = "test.yaml"):
    return plan_of_text(BASE + extra, filename)[0]


def problems(extra: str) -> str:
    with pytest.raises(ProfileError) as caught:
        plan(extra)
    return caught.value.format()


def test_a_user_with_a_key_and_sudo_is_rendered_quoted():
    rendered = render(plan(f"users:\n  - name: dev\n    sudo: true\n    ssh_authorized_keys: ['{KEY}']\nssh: true\n"))
    script = rendered["mkosi.postinst.chroot"].content
    assert "useradd --create-home --shell /bin/bash --user-group dev" in script
    assert f"printf '%s\\n' '{KEY}' > /home/dev/.ssh/authorized_keys" in script
    assert "usermod --password '*' dev" in script and "NOPASSWD" in script
    assert "enable pmem-ssh-keygen.service" in rendered[
        "mkosi.extra/usr/lib/systemd/system-preset/50-pmem-image.preset"].content
    assert "mkosi.extra/etc/systemd/network/80-pmem-image-dhcp.network" in rendered   # dhcp by default with ssh


def test_the_password_hash_is_quoted_for_the_shell():
    script = render(plan("users:\n  - {name: dev, password_hash: '$y$j9T$abcdefgh$ijklmnopqrstu'}\n"))[
        "mkosi.postinst.chroot"].content
    assert "usermod --password '$y$j9T$abcdefgh$ijklmnopqrstu' dev" in script


@pytest.mark.parametrize("extra, says", [
    ("users:\n  - name: root\n", "users[0].name: 'root' is a system account"),
    ("users:\n  - {name: dev}\n  - {name: dev}\n", "users[1].name: user dev is already defined as users[0]"),
    ("users:\n  - {name: dev, password_hash: hunter2}\n", "mkpasswd -m yescrypt"),
    (f"users:\n  - {{name: dev, ssh_authorized_keys: [\"{KEY}\\nPermitRootLogin yes\"]}}\nssh: true\n",
     "one line without control characters"),
    ("users:\n  - {name: dev, ssh_authorized_keys: ['ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x']}\nssh: true\n",
     "not a ssh-ed25519 key"),
    (f"users:\n  - {{name: dev, ssh_authorized_keys: ['{KEY}']}}\n", "SSH keys for dev, but the image has no SSH"),
    ("ssh: true\nnetwork: none\n", "leaves sshd unreachable"),
    ("packages: ['fio; reboot']\n", "packages[0]: 'fio; reboot' is not allowed here"),
    ("packages: [Fio]\n", "is not a debian package name"),
    ("disk: {size: 1G}\n", "too small"),
    ("extra_trees: [nowhere]\n", "is not a directory next to the profile"),
])
def test_bad_access_fields_are_bad_input(extra, says):
    assert says in problems(extra)


def test_extra_trees_stay_inside_the_profile_directory(tmp_path: Path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "out").symlink_to("../../..")
    (tmp_path / "tree" / "ok").symlink_to("/usr/share/zoneinfo/UTC")    # absolute: a path in the image
    profile = tmp_path / "p.yaml"
    with pytest.raises(ProfileError, match="out is a symlink that leads out of tree"):
        plan_of_text(BASE + "extra_trees: [tree]\n", str(profile))
    (tmp_path / "tree" / "out").unlink()
    assert plan_of_text(BASE + "extra_trees: [tree]\n", str(profile))[0].extra_tree_paths == [str(tmp_path / "tree")]
    with pytest.raises(ProfileError, match="is outside the profile's directory"):
        plan_of_text(BASE + "extra_trees: [../..]\n", str(profile))


def test_disk_size_renders_the_partitions_mkosi_would_with_a_sized_root():
    files = render(plan("disk: {size: 8G}\n"))
    assert "SizeMinBytes=8589934592" in files["mkosi.repart/10-root.conf"].content
    assert "Format=ext4" in files["mkosi.repart/10-root.conf"].content
    assert "mkosi.repart/05-bios.conf" in files and "SizeMinBytes=1G" in files["mkosi.repart/00-esp.conf"].content
    assert not any(path.startswith("mkosi.repart/") for path in render(plan(""))), "mkosi's defaults otherwise"


def test_console_autologin_only_when_asked():
    assert "Autologin=yes" in render(plan("console_autologin: true\n"))["mkosi.conf"].content
    assert "Autologin" not in render(plan(""))["mkosi.conf"].content


def test_run_command_banner_and_ssh(tmp_path: Path):
    lab = plan(f"users:\n  - {{name: dev, ssh_authorized_keys: ['{KEY}']}}\nssh: true\n")
    argv = qemu_argv(BootRequest(lab, tmp_path / "o.qcow2", "tcg", "interactive", ssh_port=2222))
    assert "-smbios" not in argv and "-nodefaults" not in argv and "-no-reboot" not in argv
    assert "mon:stdio" in argv and "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22" in argv
    assert argv[argv.index("-m") + 1] == "4096M" and argv[argv.index("-machine") + 1] == "q35"
    assert login_user(lab) == "dev" and "pmem-image ssh t" in banner(lab, 2222, False)
    run = run_dir(tmp_path / "t")                     # out/.state/t/run: outside the build output
    assert run == tmp_path / ".state" / "t" / "run"
    run.mkdir(parents=True)
    (run / "state.json").write_text('{"pid": 1, "ssh_port": 2222, "user": "dev"}')
    assert ssh_argv(tmp_path / "t", "t", None, None, ["uname"])[-2:] == ["dev@127.0.0.1", "uname"]
    assert "-p" in ssh_argv(tmp_path / "t", "t", "root", Path("k"), [])


def test_run_hands_a_boot_its_own_key_and_ssh_uses_it(tmp_path: Path):
    """A user without keys of their own can still be logged into with `run` + `ssh`: run's key for the boot
    goes to the guest as an SMBIOS OEM string (pmem-session-key puts it under /run), ssh takes it from state."""
    lab = plan("users:\n  - {name: dev, sudo: true}\nssh: true\n")
    assert login_user(lab) == "dev" and login_user(plan("")) is None
    argv = qemu_argv(BootRequest(lab, tmp_path / "o.qcow2", "tcg", "interactive", ssh_port=2222,
                                 ssh_key="ssh-ed25519 AAAAC3 k"))
    assert "type=11,value=pmem-image:ssh-key=ssh-ed25519 AAAAC3 k" in argv
    files = render(lab)
    assert "dev" in files["mkosi.extra/usr/lib/pmem-image/pmem-session-key"].content
    assert "enable pmem-session-key.service" in files[
        "mkosi.extra/usr/lib/systemd/system-preset/50-pmem-image.preset"].content
    assert "mkosi.extra/usr/lib/pmem-image/pmem-session-key" not in render(plan(""))
    run_dir(tmp_path / "t").mkdir(parents=True)
    (run_dir(tmp_path / "t") / "state.json").write_text(
        '{"pid": 1, "ssh_port": 2222, "user": "dev", "identity": "/out/.state/t/run/session-key"}')
    argv = ssh_argv(tmp_path / "t", "t", None, None, [])
    assert argv[argv.index("-i") + 1] == "/out/.state/t/run/session-key" and "IdentitiesOnly=yes" in argv
    argv = ssh_argv(tmp_path / "t", "t", None, Path("mine"), [])
    assert argv[argv.index("-i") + 1] == "mine"
