"""What makes an image usable: users and their keys, root's keys, SSH, network, disk size, extra
packages and files. Shape and per-field syntax only (cross-field rules are checks in plan/checks.py)."""

import base64
import binascii
import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .sizes import Size

USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
GROUP_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
# Accounts the distributions create themselves: a profile user of the same name would take them over.
SYSTEM_ACCOUNTS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "_apt", "nobody", "nogroup", "messagebus", "sshd", "polkitd", "adm",
    "operator", "ftp", "halt", "shutdown", "systemd-network", "systemd-resolve", "systemd-timesync",
    "systemd-journal", "systemd-coredump", "systemd-oom", "tss", "dbus", "sudo", "wheel", "users", "staff",
    "tty", "disk", "kmem", "dialout", "utmp", "video", "audio", "input", "kvm", "render", "shadow"})
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
# crypt(3) hashes: yescrypt, SHA-512, SHA-256, bcrypt. Their alphabet has no quote, space or backslash.
PASSWORD_HASH_PATTERN = r"^\$(y|6|5|2b)\$[./A-Za-z0-9$=]{8,200}$"
PACKAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$"
TREE_PATTERN = r"^[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}$"


def _ssh_public_key(text: str) -> str:
    """type, base64 body whose first field names the same type, optional comment; one line."""
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ValueError("an SSH public key is one line without control characters")
    parts = text.split(" ", 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValueError(f"not an OpenSSH public key (type {parts[0][:40]!r}); expected one of {', '.join(KEY_TYPES)}")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key's body is not base64") from None
    length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4:4 + length].decode("ascii", "replace") != parts[0]:
        raise ValueError(f"the key's body is not a {parts[0]} key")
    return text


SshKey = Annotated[str, Field(max_length=16384, json_schema_extra={
    "hint": "paste the whole line of ~/.ssh/id_ed25519.pub: type, base64 body, optional comment"}),
    AfterValidator(_ssh_public_key)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_a_system_account(name: str) -> str:
    if name in SYSTEM_ACCOUNTS or name.startswith("systemd-"):
        raise ValueError(f"{name!r} is a system account of the distribution")
    return name


class User(StrictModel):
    name: Annotated[str, AfterValidator(_not_a_system_account)] = Field(
        pattern=USER_PATTERN, description="Login name.", json_schema_extra={
            "hint": "lowercase letters, digits, '_' and '-', starting with a letter or '_' (at most 32), "
                    "not a system account such as root or daemon"})
    ssh_authorized_keys: list[SshKey] = Field(default_factory=list, description="OpenSSH public keys.")
    sudo: bool = Field(False, description="Passwordless sudo.")
    password_hash: Optional[str] = Field(None, pattern=PASSWORD_HASH_PATTERN, description="crypt(3) hash.",
                                         json_schema_extra={"hint": "a crypt(3) hash such as $y$... or $6$..., "
                                                            "made with: mkpasswd -m yescrypt (never the password)"})
    groups: list[Annotated[str, Field(pattern=GROUP_PATTERN)]] = Field(
        default_factory=list, description=(
            "Extra groups that exist in the image; pmem (made in every image with users) may use device DAX and "
            "read the pmem's physical addresses, as PMDK's tests need."))


class Root(StrictModel):
    ssh_authorized_keys: list[SshKey] = Field(default_factory=list,
                                              description="Keys for root; root stays locked without them.")


class Disk(StrictModel):
    size: Optional[Size] = Field(None, description="Root partition size (at least 2G); default: as small as its contents "
                                  "(mkosi's Minimize=guess).")


PackageName = Annotated[str, Field(pattern=PACKAGE_PATTERN, json_schema_extra={
    "hint": "a package name of the distribution, e.g. fio or gdb"})]
TreePath = Annotated[str, Field(pattern=TREE_PATTERN, json_schema_extra={
    "hint": "a directory relative to the profile, e.g. overlay/"})]
Network = Literal["dhcp", "none"]
