"""build and verify over many profiles: expand directories, check every profile before anything is built,
run them in a stable order (N at once with --jobs), one status line each, a summary table at the end."""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from ..profile.errors import EXIT_BAD_INPUT, EXIT_OK, PmemImageError, UsageError
from ..runner import cancel_everything

PROFILE_SUFFIXES = (".yaml", ".yml")
# One mkosi build wants about 2 CPUs and 8 GiB here (package installation, mkfs, the initrd).
CPUS_PER_BUILD, MEMORY_PER_BUILD = 2, 8 << 30


@dataclass
class Outcome:
    target: str
    name: str
    result: str            # built | up to date | passed | proof failed | failed | bad input
    code: int
    seconds: float
    detail: str = ""


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, directories as their profiles (sorted); each path once, in order. A build directory
    (out/NAME, with plan.json) stays itself: verify takes those too."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir() and not (path / "plan.json").exists():
            children = sorted(p for p in path.iterdir() if p.suffix in PROFILE_SUFFIXES and p.is_file())
            if not children:
                raise UsageError(f"{path} holds no profiles (*.yaml)", "name profile files or a directory of them")
            found += children
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def machine_jobs() -> int:
    """How many builds this machine runs at once without starving them (2 CPUs and 24 GiB: one)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min((os.cpu_count() or 1) // CPUS_PER_BUILD, memory // MEMORY_PER_BUILD))


Loaded = TypeVar("Loaded")


def check_all(targets: list[Path], load: Callable[[Path], Loaded]) -> dict[Path, Loaded]:
    """Every profile loaded and checked before anything runs: bad input fails the whole command (exit 2)
    with every file's errors, and nothing is built."""
    loaded: dict[Path, Loaded] = {}
    errors = []
    for target in targets:
        try:
            loaded[target] = load(target)
        except PmemImageError as error:
            if error.exit_code != EXIT_BAD_INPUT:
                raise
            errors.append(error.format())
    if errors:
        raise UsageError("\n".join(errors) + f"\n{len(errors)} of {len(targets)} profiles are invalid; nothing was built",
                         "fix them (pmem-image validate names every problem), then run again")
    return loaded


def check_distinct_names(names: dict[Path, str]) -> None:
    """Two targets with one name would build into (or verify) the same out/NAME: refused before anything runs."""
    seen: dict[str, Path] = {}
    for target, name in names.items():
        if name in seen:
            raise UsageError(f"{seen[name]} and {target} are both named {name!r}: they would share out/{name}",
                             "give one of them another name (names are the output directories)")
        seen[name] = target


def run_all(targets: list[Path], one: Callable[[Path], Outcome], keep_going: bool, jobs: int = 1) -> list[Outcome]:
    """`one` per target in order (jobs > 1: that many at once, reported in order); stop after the first
    failure unless keep_going."""
    outcomes: list[Outcome] = []
    if jobs <= 1:
        for target in targets:
            outcomes.append(one(target))
            status_line(outcomes[-1])
            if outcomes[-1].code != EXIT_OK and not keep_going:
                break
        return outcomes
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(one, target) for target in targets]
    try:
        for index, future in enumerate(futures):
            outcomes.append(future.result())
            status_line(outcomes[-1])
            if outcomes[-1].code != EXIT_OK and not keep_going:
                # Those not started are not run; those already running finish and are reported as they end.
                later = futures[index + 1:]
                started = [rest for rest in later if not rest.cancel()]
                for rest in started:
                    outcomes.append(rest.result())
                    status_line(outcomes[-1])
                break
    except BaseException:
        # Ctrl-C or SIGTERM (raised in this, the main thread): nothing queued starts, every child of every
        # worker is stopped, and the workers then fail fast without replacing any output (review H4).
        for rest in futures:
            rest.cancel()
        cancel_everything()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return outcomes


def timed(target: Path, name: str, work: Callable[[], tuple[str, int, str]]) -> Outcome:
    """Run one profile's work; a pmem-image error becomes a failed outcome (the others go on)."""
    started = time.monotonic()
    try:
        result, code, detail = work()
    except PmemImageError as error:
        result, code, detail = "failed", error.exit_code, error.message.splitlines()[0]
        print(f"pmem-image: error: {error.format()}", file=sys.stderr)
    return Outcome(str(target), name, result, code, time.monotonic() - started, detail)


def status_line(outcome: Outcome) -> None:
    detail = f": {outcome.detail}" if outcome.detail else ""
    print(f"== {outcome.name}: {outcome.result} in {outcome.seconds:.0f} s (exit {outcome.code}){detail}",
          file=sys.stderr, flush=True)


def summary(outcomes: list[Outcome], skipped: list[Path]) -> str:
    rows = [(o.name, o.result, f"{o.seconds:.0f} s", o.target) for o in outcomes]
    rows += [(path.stem, "not run", "-", str(path)) for path in skipped]
    widths = [max(len(r[i]) for r in rows + [("profile", "result", "time", "file")]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("profile", "result", "time", "file"), widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    lines.append(", ".join(f"{n} {result}" for result, n in counts.items())
                 + (f", {len(skipped)} not run (no --keep-going)" if skipped else ""))
    return "\n".join(lines)


def exit_code(outcomes: list[Outcome]) -> int:
    """The first failure's code (in the profiles' order), else 0."""
    return next((o.code for o in outcomes if o.code != EXIT_OK), EXIT_OK)
