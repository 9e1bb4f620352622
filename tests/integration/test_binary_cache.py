"""The binary cache against a real OCI registry (Debian's docker-registry on 127.0.0.1, started here) with the
real oras client: push a build, delete it, get it back with build --substitute and no mkosi run; a tampered
blob is refused; a key the registry lacks is built. The builds are the stand-in mkosi's (seconds)."""

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import PROFILES, ROOT
from conftest import CLI_WITHOUT_ROOT_CHECK

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = tmp_path / "registry"
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n")
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the registry did not come up"
            time.sleep(0.2)
    yield f"127.0.0.1:{port}/pmem-image", storage
    process.terminate()
    process.wait(timeout=10)


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI_WITHOUT_ROOT_CHECK, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_push_then_substitute_instead_of_building_and_refuse_a_tampered_blob(env, registry):
    repository, storage = registry
    out = Path(env["PMEM_IMAGE_OUT"]) / "default"
    assert cli(env, "build", str(PROFILES / "default.yaml")).returncode == 0
    built = json.loads((out / "manifest.json").read_text())
    pushed = cli(env, "push", str(out), repository, "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["reference"] == f"{repository}:{built['build_key']}"
    pinned = json.loads(pushed.stdout)["pinned"]
    assert pinned.startswith(f"{repository}@sha256:") and len(pinned.rsplit(":", 1)[1]) == 64

    shutil.rmtree(out)
    mkosi_ran = Path(env["FAKE_MKOSI_STATE"]) / "pid"
    mkosi_ran.unlink()
    started = time.monotonic()
    pulled = cli(env, "build", "--substitute", repository, str(PROFILES / "default.yaml"))
    assert pulled.returncode == 0, pulled.stderr
    assert "default: pulled" in pulled.stderr and not mkosi_ran.exists()
    print(f"\nsubstituted the stand-in build in {time.monotonic() - started:.1f} s")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build_key"] == built["build_key"] and manifest["pulled_from"].startswith(repository)
    assert manifest["pulled_digest"] == pinned          # the exact artifact, by a reference no push can move
    for entry in built["files"]:
        assert hashlib.sha256((out / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    again = cli(env, "build", str(PROFILES / "default.yaml"))      # the pulled output counts as built
    assert again.returncode == 0 and "up to date" in again.stderr

    raw_sha = next(e["sha256"] for e in built["files"] if e["name"] == "default.raw")
    blob = next(storage.rglob(f"blobs/sha256/*/{raw_sha}/data"))
    blob.write_bytes(b"not the disk that was pushed")
    shutil.rmtree(out)
    refused = cli(env, "build", "--substitute", repository, str(PROFILES / "default.yaml"))
    assert refused.returncode == 3 and "default.raw from the registry does not match its digest" in refused.stderr
    assert not out.exists() and list(out.parent.glob(".staging-*")) == []


def published_names(repository: str, tag: str) -> set[str]:
    """The file names the registry holds for a tag (the layers' titles in its OCI manifest)."""
    host, _, name = repository.partition("/")
    request = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{tag}",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    manifest = json.loads(urllib.request.urlopen(request, timeout=10).read())
    return {layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]}


def test_only_the_build_is_published_and_a_pull_writes_this_machines_own_files(env, registry, tmp_path):
    """push leaves out what is one machine's (review M9): plan.json (the host's mirror and paths, password
    hashes), the logs, the libvirt domain with the builder's paths, SHA256SUMS over those; the pulling machine
    writes its own plan.json (root only), domain (its own paths) and sums."""
    repository, _ = registry
    out = Path(env["PMEM_IMAGE_OUT"]) / "default"
    assert cli(env, "build", str(PROFILES / "default.yaml")).returncode == 0
    assert (out / "build.log").exists() and (out / "plan.json").stat().st_mode & 0o777 == 0o600
    key = json.loads((out / "manifest.json").read_text())["build_key"]
    assert cli(env, "push", str(out), repository).returncode == 0
    names = published_names(repository, key)
    assert {"default.raw", "manifest.json", "contents.json"} <= names
    assert not names & {"plan.json", "build.log", "default.libvirt.xml", "SHA256SUMS"}, names
    elsewhere = tmp_path / "elsewhere"
    pulled = cli({**env, "PMEM_IMAGE_OUT": str(elsewhere)}, "build", "--substitute", repository,
                 str(PROFILES / "default.yaml"))
    assert pulled.returncode == 0 and "default: pulled" in pulled.stderr, pulled.stderr
    local = elsewhere / "default"
    assert (local / "plan.json").stat().st_mode & 0o777 == 0o600 and not (local / "build.log").exists()
    assert str(local / "default.raw") in (local / "default.libvirt.xml").read_text()
    assert str(out) not in (local / "default.libvirt.xml").read_text()
    sums = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=local, capture_output=True, text=True)
    assert sums.returncode == 0 and "plan.json: OK" in sums.stdout, sums.stdout + sums.stderr


def test_a_key_the_registry_lacks_is_built_here(env, registry):
    repository, _ = registry
    result = cli(env, "build", "--substitute", repository, str(PROFILES / "default.yaml"))
    assert result.returncode == 0 and "has no build" in result.stderr and "default: built" in result.stderr
    assert (Path(env["FAKE_MKOSI_STATE"]) / "pid").exists()


def test_a_repository_with_a_tag_is_refused(env):
    result = cli(env, "build", "--substitute", "127.0.0.1:1/repo:latest", str(PROFILES / "default.yaml"))
    assert result.returncode == 2 and "is not REGISTRY/REPOSITORY" in result.stderr


def _key(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """An OpenSSH key pair and an allowed_signers file that trusts it."""
    private = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)], check=True)
    allowed = tmp_path / f"{name}.allowed"
    allowed.write_text(f"{name} {(tmp_path / f'{name}.pub').read_text().split(' ', 2)[0]} "
                       f"{(tmp_path / f'{name}.pub').read_text().split(' ', 2)[1]}\n")
    return private, allowed


@pytest.mark.hostile
def test_signed_builds_substitute_only_with_a_trusted_key(env, registry, tmp_path):
    """push --sign-key, then --substitute --trusted-keys: the signer's key is accepted; another key, an unsigned
    artifact and a moved tag are refused (exit 3, nothing replaced)."""
    repository, _ = registry
    builder_key, builder_trust = _key(tmp_path, "builder")
    _, stranger_trust = _key(tmp_path, "stranger")
    out = Path(env["PMEM_IMAGE_OUT"]) / "default"
    assert cli(env, "build", str(PROFILES / "default.yaml")).returncode == 0
    built = json.loads((out / "manifest.json").read_text())
    assert cli(env, "push", str(out), repository, "--sign-key", str(builder_key)).returncode == 0
    shutil.rmtree(out)
    pulled = cli(env, "build", "--substitute", repository, "--trusted-keys", str(builder_trust),
                 str(PROFILES / "default.yaml"))
    assert pulled.returncode == 0 and "signed by builder" in pulled.stderr, pulled.stderr
    assert json.loads((out / "manifest.json").read_text())["signed_by"] == "builder"

    shutil.rmtree(out)
    other = cli(env, "build", "--substitute", repository, "--trusted-keys", str(stranger_trust),
                str(PROFILES / "default.yaml"))
    assert other.returncode == 3 and "signed by no trusted key" in other.stderr and not out.exists()

    # The same tag re-pushed unsigned (whoever can push the tag can do this): refused with keys configured.
    assert cli(env, "build", str(PROFILES / "default.yaml")).returncode == 0
    assert cli(env, "push", str(out), repository).returncode == 0
    before = (out / "manifest.json").read_text()
    unsigned = cli(env, "build", "--force", "--substitute", repository, "--trusted-keys", str(builder_trust),
                   str(PROFILES / "default.yaml"))
    assert unsigned.returncode == 3 and "is not signed" in unsigned.stderr
    assert (out / "manifest.json").read_text() == before                  # the earlier output stands

    # The tag moved to another build's signed artifact: its statement names another key.
    second = tmp_path / "second.yaml"
    second.write_text((PROFILES / "default.yaml").read_text().replace("size: 1G", "size: 2G", 1))
    assert cli(env, "build", str(second)).returncode == 0
    other_build = json.loads((out / "manifest.json").read_text())
    assert other_build["build_key"] != built["build_key"]
    signed_other = cli(env, "push", str(out), repository, "--sign-key", str(builder_key), "--json")
    assert signed_other.returncode == 0
    import oras.client
    client = oras.client.OrasClient(hostname=repository.split("/")[0], insecure=True)
    moved = client.get_manifest(f"{repository}:{other_build['build_key']}")
    client.upload_manifest(moved, client.get_container(f"{repository}:{built['build_key']}"))
    shutil.rmtree(out)
    refused = cli(env, "build", "--substitute", repository, "--trusted-keys", str(builder_trust),
                  str(PROFILES / "default.yaml"))
    assert refused.returncode == 3 and not out.exists(), refused.stderr


@pytest.mark.hostile
def test_an_archive_layer_is_refused_before_anything_is_unpacked(env, registry, tmp_path):
    """A tar+gzip layer holding a symlink out of the pull directory and a file through it (what oras' own
    pull would unpack as root, unfiltered): refused from the OCI manifest, the canary directory untouched."""
    repository, _ = registry
    canary = tmp_path / "canary"
    canary.mkdir()
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "escape").symlink_to(canary)
    assert cli(env, "build", str(PROFILES / "default.yaml")).returncode == 0
    key = json.loads((Path(env["PMEM_IMAGE_OUT"]) / "default" / "manifest.json").read_text())["build_key"]
    import oras.client
    client = oras.client.OrasClient(hostname=repository.split("/")[0], insecure=True)
    client.push(target=f"{repository}:{key}", files=[str(evil)], disable_path_validation=True, quiet=True)
    result = cli(env, "build", "--force", "--substitute", repository, str(PROFILES / "default.yaml"))
    assert result.returncode == 3 and "not a plain file" in result.stderr, result.stderr
    assert list(canary.iterdir()) == []
