"""Signatures on the binary cache, as Nix's trusted-public-keys: `push --sign-key KEY` signs a statement
naming the build key and the sha256 of the build's manifest.json (which names every file's sha256) with an
OpenSSH key (`ssh-keygen -Y sign`); `build --substitute --trusted-keys FILE` accepts a pulled build only
when that statement verifies against FILE, an OpenSSH allowed_signers list (`ssh-keygen -Y verify`).
Digests prove the bytes arrived as the registry sent them; the signature proves who built them."""

import tempfile
from pathlib import Path

from ..profile.errors import PmemImageError, UsageError
from ..runner import Runner
from .hashing import sha256_file

NAMESPACE = "pmem-image-build"      # ssh-keygen -n: a signature made for another purpose does not verify
SIGNATURE = "pmem-image.sig"        # the artifact's file holding it


class SignatureRefused(PmemImageError):
    """An artifact whose signature is missing or does not verify against the trusted keys."""


def statement(build_key: str, manifest: Path) -> bytes:
    return f"pmem-image build {build_key}\nmanifest.json sha256 {sha256_file(manifest)}\n".encode()


def sign(build_key: str, manifest: Path, private_key: Path, work: Path, runner: Runner) -> Path:
    """work/SIGNATURE over the statement for this build."""
    if not private_key.is_file():
        raise UsageError(f"signing key {private_key} does not exist", "make one with ssh-keygen -t ed25519 -f KEY")
    text = work / "statement"
    text.write_bytes(statement(build_key, manifest))
    result = runner.query(["ssh-keygen", "-q", "-Y", "sign", "-f", str(private_key), "-n", NAMESPACE, str(text)])
    if result.returncode != 0:
        raise PmemImageError(f"ssh-keygen could not sign with {private_key}: {result.stderr.strip()}",
                             "the key must be an OpenSSH private key without a passphrase prompt (or in ssh-agent)")
    signature = work / SIGNATURE
    (work / "statement.sig").rename(signature)
    return signature


def verify(build_key: str, directory: Path, allowed_signers: Path, runner: Runner) -> str:
    """The principal whose trusted key signed the pulled build in `directory`; refused otherwise."""
    signature = directory / SIGNATURE
    if not allowed_signers.is_file():
        raise UsageError(f"trusted keys file {allowed_signers} does not exist",
                         "an OpenSSH allowed_signers file: one 'NAME KEYTYPE BASE64' line per trusted key")
    if not signature.is_file() or signature.is_symlink():
        raise SignatureRefused(f"the artifact for build key {build_key[:16]} is not signed",
                               "push it with --sign-key, or build without --substitute")
    found = runner.query(["ssh-keygen", "-Y", "find-principals", "-s", str(signature), "-f", str(allowed_signers)])
    principals = found.stdout.split()
    if found.returncode != 0 or not principals:
        raise SignatureRefused(f"the artifact for build key {build_key[:16]} is signed by no trusted key",
                               f"add the signer's public key to {allowed_signers}, or build without --substitute")
    with tempfile.TemporaryDirectory() as scratch:
        text = Path(scratch) / "statement"
        text.write_bytes(statement(build_key, directory / "manifest.json"))
        checked = runner.query(["ssh-keygen", "-Y", "verify", "-f", str(allowed_signers), "-I", principals[0],
                                "-n", NAMESPACE, "-s", str(signature)], stdin=text)
    if checked.returncode != 0:
        raise SignatureRefused(f"the signature on build key {build_key[:16]} does not verify: "
                               f"{(checked.stderr or checked.stdout).strip()[:200]}",
                               "the artifact or its tag was changed after signing; build without --substitute")
    return principals[0]
