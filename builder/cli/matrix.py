"""pmem-image matrix: the job list for a CI engine's fan-out, one job per profile (or per profile and export
format), each with its build identity, split to the engines' documented limits: GitHub Actions runs at most
256 jobs from one matrix and takes job outputs up to 1 MB; GitLab's parallel:matrix makes at most 200 jobs."""

import argparse
import json
from pathlib import Path

import yaml

from ..plan.model import Plan
from ..profile.errors import EXIT_OK, UsageError
from . import many
from .targets import load_plan

GITHUB_MAX_JOBS = 256
GITHUB_MAX_OUTPUT = 1 << 20
GITLAB_MAX_JOBS = 200
# What each GitLab child job runs (the GitHub workflow spells the same steps in .github/workflows/images.yml).
GITLAB_SCRIPT = ['./pmem-image build --verify ${PMEM_IMAGE_FORMAT:+--format "$PMEM_IMAGE_FORMAT"} '
                 '--junit "proof-$PMEM_IMAGE_JOB.xml" "$PMEM_IMAGE_PROFILE"']
CONTAINER = "debian:bookworm"       # bootstrap wants Debian 12; mkosi and QEMU need a privileged runner


def jobs(plans: list[tuple[Path, Plan]], per_format: bool) -> list[dict]:
    """One entry per profile (per_format: per profile and export format; "" is the raw disk). job: a unique
    name for the job, image: out/<image>/ holds its build, identity: the plan's identity hash."""
    entries = []
    for path, plan in plans:
        base = {"job": plan.name, "image": plan.name, "profile": str(path), "identity": plan.digest(),
                "distribution": f"{plan.distribution}-{plan.release}", "backend": plan.pmem_backend}
        for fmt in (plan.formats or [""]) if per_format else [None]:
            entries.append(base if fmt is None else base | {"format": fmt, "job": f"{plan.name}-{fmt or 'raw'}"})
    return entries


def chunks(entries: list[dict], size: int) -> list[list[dict]]:
    return [entries[i:i + size] for i in range(0, len(entries), size)] or [[]]


def github(entries: list[dict], chunk: int) -> str:
    """One matrix (`strategy.matrix: ${{ fromJSON(...) }}`) of at most 256 jobs: the chunk-th slice."""
    parts = chunks(entries, GITHUB_MAX_JOBS)
    if not 0 <= chunk < len(parts):
        raise UsageError(f"--chunk {chunk}: there are {len(parts)} chunk(s) of at most {GITHUB_MAX_JOBS} jobs",
                         f"use --chunk 0 to {len(parts) - 1}")
    text = json.dumps({"include": parts[chunk]}, separators=(",", ":"))
    if len(text.encode()) > GITHUB_MAX_OUTPUT:
        raise UsageError(f"the matrix is {len(text.encode())} bytes, above GitHub's 1 MB for a job output",
                         "split the profiles over more generator calls")
    return text


def gitlab(entries: list[dict]) -> str:
    """A child pipeline: one build job per 200 profiles, each a parallel:matrix of single-value entries (one
    job each), with the proof as a JUnit report."""
    pipeline: dict = {"stages": ["build"], "default": {"image": CONTAINER}}
    for number, part in enumerate(chunks(entries, GITLAB_MAX_JOBS)):
        if not part:
            continue
        pipeline[f"pmem-image-{number}"] = {
            "stage": "build", "script": GITLAB_SCRIPT,
            "parallel": {"matrix": [{"PMEM_IMAGE_PROFILE": e["profile"], "PMEM_IMAGE_JOB": e["job"],
                                     "PMEM_IMAGE_IDENTITY": e["identity"], "PMEM_IMAGE_FORMAT": e.get("format", "")}
                                    for e in part]},
            "artifacts": {"when": "always", "paths": ["out/*/manifest.json", "out/*/verify/report.json"],
                          "reports": {"junit": "proof-*.xml"}}}
    return yaml.safe_dump(pipeline, sort_keys=False)


def cmd_matrix(args: argparse.Namespace) -> int:
    targets = many.expand(args.paths)
    loaded = many.check_all(targets, lambda t: load_plan(t, tuple(args.allow_path)))
    entries = jobs([(t, loaded[t][0]) for t in targets], args.per_format)
    if args.format == "github":
        print(github(entries, args.chunk))
    elif args.format == "gitlab":
        print(gitlab(entries), end="")
    else:
        print(json.dumps({"jobs": entries, "github_chunks": len(chunks(entries, GITHUB_MAX_JOBS))}, indent=2))
    return EXIT_OK


def add_parser(commands, allow) -> None:
    matrix = commands.add_parser("matrix", parents=[allow], help="the job list for CI fan-out (GitHub Actions "
                                                                 "matrix, GitLab child pipeline, or JSON)")
    matrix.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="profiles or directories of them")
    matrix.add_argument("--format", choices=["github", "gitlab", "json"], default="json")
    matrix.add_argument("--per-format", action="store_true", help="a job per profile and export format")
    matrix.add_argument("--chunk", type=int, default=0, metavar="K",
                        help=f"github: the K-th slice of {GITHUB_MAX_JOBS} jobs (json output says how many)")
    matrix.set_defaults(func=cmd_matrix)
