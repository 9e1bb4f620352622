"""A binary cache on an OCI registry, as Nix has substituters: `push` stores a build's files as one OCI
artifact tagged by its build key (the hash of everything that determines the image); `build --substitute`
pulls the artifact whose tag is the key it would build and uses it after checking every file, instead of
running mkosi. The registry protocol is the oras library's (OCI distribution), not ours; what it serves is
untrusted: the OCI manifest is read first and only plain file layers with safe names are taken, each blob
downloaded to a name chosen here (oras' own pull unpacks tar+gzip layers with no filter, as root), and
everything is checked (and, with trusted keys, its signature verified: signing.py) before the pipeline
renames it into out/."""

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Optional

from ..profile.errors import PmemImageError, UsageError
from ..runner import Runner
from .manifest import file_stamp, read_manifest
from .signing import SIGNATURE, sign, verify

TITLE = "org.opencontainers.image.title"
PLAIN_LAYER = "application/vnd.oci.image.layer.v1.tar"     # oras' media type for one plain file
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _hostname(host: str) -> str:
    """REGISTRY without its port: 127.0.0.1:5000 -> 127.0.0.1, [::1]:5000 -> [::1]."""
    return host if host.endswith("]") or ":" not in host else host.rsplit(":", 1)[0]


class SubstituteRefused(PmemImageError):
    """What the registry gave does not match what it claims (a tampered or broken artifact)."""


def _split(repository: str) -> str:
    """REGISTRY/REPO (no tag: the build key is the tag)."""
    host, _, path = repository.partition("/")
    if not path or ":" in path or "@" in path:
        raise UsageError(f"{repository!r} is not REGISTRY/REPOSITORY", "e.g. 127.0.0.1:5000/pmem-image or "
                         "ghcr.io/OWNER/pmem-images (the tag is each build's key)")
    return host


def _client(repository: str):
    import oras.client   # here, not at import: every other command starts without it
    host = _split(repository)
    # A registry on this machine speaks plain HTTP (Debian's docker-registry as the tests run it).
    return oras.client.OrasClient(hostname=host, insecure=_hostname(host) in LOCAL_HOSTS)


# What stays on the machine that built it (review M9): plan.json holds the view (the host's mirror, its kernel
# and extra-tree paths) and the users' password hashes and keys; the logs hold host paths; the libvirt domain
# points at this machine's out/; SHA256SUMS lists those. A pull writes its own plan.json, domain and sums.
LOCAL_ONLY_FILES = ("plan.json", "SHA256SUMS")
LOCAL_ONLY_SUFFIXES = (".log", ".libvirt.xml")


def published_files(directory: Path) -> list[Path]:
    """The files of a build that `push` sends: the images, exports, listings and manifests, nothing local."""
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name != SIGNATURE and p.name not in LOCAL_ONLY_FILES and not p.name.endswith(LOCAL_ONLY_SUFFIXES))


def push(directory: Path, repository: str, signing_key: Optional[Path] = None) -> str:
    """The build's published files (not its plan, logs or libvirt domain, nor verify/, run/ or state/: those
    are one machine's) as one artifact, tagged with the build key, signed with `signing_key` when given;
    returns the reference."""
    manifest = read_manifest(directory)
    if manifest is None or "build_key" not in manifest:
        raise UsageError(f"{directory} holds no build", "build it first: pmem-image build PROFILE")
    reference = f"{repository}:{manifest['build_key']}"
    files = published_files(directory)
    with tempfile.TemporaryDirectory() as work:
        if signing_key is not None:
            files.append(sign(manifest["build_key"], directory / "manifest.json", signing_key, Path(work), Runner()))
        return _push_files(repository, reference, files, manifest)


def _push_files(repository: str, reference: str, files: list[Path], manifest: dict) -> str:
    try:
        _client(repository).push(target=reference, files=[str(p) for p in files], disable_path_validation=True,
                                  do_chunked=True, quiet=True, manifest_annotations={
                                      "io.pmem-image.name": manifest["name"], "io.pmem-image.build-key":
                                          manifest["build_key"], "io.pmem-image.plan-hash": manifest["plan_hash"]})
    except Exception as error:     # requests/oras errors: the registry refused or is not there
        raise PmemImageError(f"pushing to {reference} failed: {error}", "is the registry up and writable?") from None
    return reference


def _oci_manifest(client, reference: str) -> Optional[tuple[dict, str]]:
    """The OCI manifest a reference names and its digest (sha256 of the bytes as served), or None."""
    import oras.defaults
    try:
        container = client.get_container(reference)
        client.auth.load_configs(container)
        response = client.do_request(f"{client.prefix}://{container.manifest_url()}", "GET", headers={
            "Accept": ", ".join(oras.defaults.default_manifest_accepted_media_types)})
        if response.status_code != 200:
            return None
        return json.loads(response.content), "sha256:" + hashlib.sha256(response.content).hexdigest()
    except Exception:              # oras raises on 404 like on any other failure; pull() says which
        return None


def pinned_reference(repository: str, key: str) -> Optional[str]:
    """REGISTRY/REPO@sha256:... of what the build key's tag names now: a reference no later push can move."""
    found = _oci_manifest(_client(repository), f"{repository}:{key}")
    return f"{repository}@{found[1]}" if found else None


def _plain_files(layers: list[dict]) -> list[tuple[str, str]]:
    """(file name, digest) of every layer, refused unless each is one plain file with a safe name: no
    archives to unpack, no paths, no duplicates."""
    taken: list[tuple[str, str]] = []
    for layer in layers:
        annotations = layer.get("annotations") or {}
        name = annotations.get(TITLE, "")
        if layer.get("mediaType") != PLAIN_LAYER or "io.deis.oras.content.unpack" in annotations:
            raise SubstituteRefused(f"the artifact's layer {name!r} is a {layer.get('mediaType')}, not a plain file",
                                    "pmem-image pushes plain files only; build without --substitute")
        if not isinstance(name, str) or not SAFE_NAME.match(name) or not DIGEST.match(str(layer.get("digest"))):
            raise SubstituteRefused(f"the artifact's layer {name!r} has no safe file name or digest",
                                    "build without --substitute")
        if any(name == seen for seen, _ in taken):
            raise SubstituteRefused(f"the artifact holds {name!r} twice", "build without --substitute")
        taken.append((name, str(layer["digest"])))
    return taken


SPARSE_BLOCK = 64 << 10


def _download_sparse(client, container, digest: str, path: Path) -> str:
    """One blob streamed into a new file, all-zero blocks left as holes (a raw disk is mostly empty: it stays
    as sparse as the build made it), hashed on the way; returns the sha256 of what arrived."""
    hashed, pending, size = hashlib.sha256(), b"", 0
    with client.get_blob(container, digest, stream=True) as response, \
            open(path, "xb") as target:        # x: a new file in the new directory, never a link's target
        response.raise_for_status()

        def put(block: bytes) -> None:
            if block.count(0) == len(block):
                target.seek(len(block), os.SEEK_CUR)
            else:
                target.write(block)

        for chunk in response.iter_content(chunk_size=1 << 20):
            hashed.update(chunk)
            size += len(chunk)
            pending += chunk
            whole = len(pending) - len(pending) % SPARSE_BLOCK
            for offset in range(0, whole, SPARSE_BLOCK):
                put(pending[offset:offset + SPARSE_BLOCK])
            pending = pending[whole:]
        if pending:
            put(pending)
        target.truncate(size)
    return hashed.hexdigest()


def _verify(directory: Path, files: list[tuple[str, str]], key: str, arrived: dict[str, str]) -> dict:
    """Every pulled file (name and digest as _plain_files took them) against its OCI layer digest, and against
    the sha256 manifest.json records (`arrived`: each file's sha256, hashed as it was downloaded)."""
    digests: dict[str, str] = {}
    for name, digest in files:
        path = directory / name
        if not path.is_file() or name not in arrived:
            raise SubstituteRefused(f"the artifact's layer {digest} did not arrive as {name!r}",
                                    "build without --substitute")
        digests[name] = arrived[name]
        if f"sha256:{digests[name]}" != digest:
            raise SubstituteRefused(f"{name} from the registry does not match its digest {digest}",
                                    "the artifact was tampered with or broke in transit; build without --substitute")
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("build_key") != key:
        raise SubstituteRefused(f"the artifact tagged {key[:16]} holds no manifest.json for that build key",
                                "build without --substitute")
    for entry in manifest.get("files", []):
        path = directory / entry["name"]
        if not path.is_file() or digests.get(entry["name"]) != entry["sha256"]:
            raise SubstituteRefused(f"{entry['name']} from the registry is not the file manifest.json names "
                                    f"(sha256 {entry['sha256'][:16]})", "build without --substitute")
    return manifest


def pull(repository: str, key: str, destination: Path, trusted_keys: Optional[Path] = None,
         runner: Optional[Runner] = None) -> Optional[dict]:
    """The build with this key into `destination` (a new directory; checked), or None when the registry has
    no such tag. With trusted_keys (an allowed_signers file) an unsigned or wrongly signed build is refused.
    The listings are left to the caller, which adds this machine's own files first."""
    reference = f"{repository}:{key}"
    client = _client(repository)
    found = _oci_manifest(client, reference)
    if found is None:
        return None
    oci, manifest_digest = found
    wanted = _plain_files(oci.get("layers", []))
    destination.mkdir(parents=True)
    arrived: dict[str, str] = {}
    try:
        container = client.get_container(reference)
        for name, digest in wanted:
            arrived[name] = _download_sparse(client, container, digest, destination / name)
    except Exception as error:
        raise PmemImageError(f"pulling {reference} failed: {error}", "build without --substitute") from None
    manifest = _verify(destination, wanted, key, arrived)
    if trusted_keys is not None:
        manifest["signed_by"] = verify(key, destination, trusted_keys, runner or Runner())
    # The files are new inodes here: record their stamps, so the next build sees them up to date.
    manifest["files"] = [{**entry, **file_stamp(destination / entry["name"])} for entry in manifest["files"]]
    manifest["pulled_from"] = reference
    manifest["pulled_digest"] = f"{repository}@{manifest_digest}"    # the artifact exactly as it was pulled
    return manifest        # the caller writes this machine's plan, domain and listings (write_local_files)
