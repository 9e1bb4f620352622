"""The first build of a debian-source profile keys on the source it builds (review L10): linux-source-X.Y is
installed before the build key is made, so the next run of the same profile is a no-op, not a rebuild."""

from pathlib import Path

from builder.build import kernel_sources, pipeline
from builder.runner import Runner
from conftest import PROFILES, plan_of_file


class InstallingRunner(Runner):
    def __init__(self, tarball: Path):
        super().__init__()
        self.tarball, self.commands = tarball, []

    def run(self, argv, **options):
        self.commands.append(argv)
        self.tarball.write_bytes(b"linux-source tarball")


def test_the_key_is_made_from_the_installed_source_not_from_its_absence(tmp_path, monkeypatch):
    tarball = tmp_path / "linux-source-6.1.tar.xz"
    for module in (pipeline, kernel_sources):
        monkeypatch.setattr(module, "debian_source_path", lambda plan: ("6.1", tarball))
    plan = plan_of_file(PROFILES / "debian-source-6.1.yaml")[0]
    runner = InstallingRunner(tarball)
    first = pipeline.kernel_source_identity(plan, tmp_path / "out", runner)
    assert runner.commands and runner.commands[0][:2] == ["apt-get", "install"] and first != "missing"
    assert pipeline.kernel_source_identity(plan, tmp_path / "out", runner) == first and len(runner.commands) == 1


def test_a_dry_run_installs_nothing(tmp_path, monkeypatch):
    tarball = tmp_path / "linux-source-6.1.tar.xz"
    for module in (pipeline, kernel_sources):
        monkeypatch.setattr(module, "debian_source_path", lambda plan: ("6.1", tarball))
    runner = InstallingRunner(tarball)
    runner.dry_run = True
    assert pipeline.kernel_source_identity(plan_of_file(PROFILES / "debian-source-6.1.yaml")[0], tmp_path, runner) \
        == "missing" and runner.commands == []
