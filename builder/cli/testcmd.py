"""pmem-image test: run a command on the image's pmem and exit with the command's exit code.

pmem-image's own failures keep the CLI's codes (2 bad input, 3 boot or tool failure, 130 interrupted) and
always say so in one line on stderr starting "pmem-image"; a timeout is 124 (as timeout(1)) with such a line.
With --json the last line on stdout is a JSON object saying which it was."""

import argparse
import io
import json
import sys
from pathlib import Path

from ..profile.errors import UsageError
from ..runner import Runner
from ..verify.junit import Suite, junit_xml
from ..verify.result import Check
from ..verify.shares import choose_user, parse_shares
from ..verify.testrun import EXIT_TIMED_OUT, TestResult, run_test
from .options import _positive_seconds
from .targets import resolve_target


def add_parser(commands, allow: argparse.ArgumentParser) -> None:
    test = commands.add_parser(
        "test", parents=[allow], help="boot the image, run a command on its pmem with host directories shared, "
                                      "exit with the command's exit code",
        description="Boots the built image on a throwaway overlay (fresh NVDIMM files unless --state), shares "
                    "each HOSTDIR read-write at GUESTDIR (9p; default: this directory at /src), waits until the "
                    "pmem is ready (pmem-ready.target), runs COMMAND in the first GUESTDIR as the user, streams "
                    "its output here, powers off and exits with its exit code.")
    test.add_argument("target", type=Path, metavar="PROFILE|out/NAME")
    test.add_argument("--share", action="append", default=[], metavar="HOSTDIR[:GUESTDIR]",
                      help="share HOSTDIR at GUESTDIR (default /src); repeatable; the command runs in the first")
    test.add_argument("--user", help="run the command as this user (default: the profile's first user, else root)")
    test.add_argument("--timeout", type=_positive_seconds, metavar="S",
                      help="stop the guest after S seconds in all and exit 124")
    test.add_argument("--state", type=Path, metavar="DIR",
                      help="nvdimm, virtio-pmem: the pmem backing files to boot on (kept; default: new ones, removed)")
    test.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    test.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write the run as JUnit XML (one testcase)")
    test.add_argument("--json", action="store_true", help="end with a JSON object on stdout: status, exit codes, times")
    test.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the command and its "
                                                                                          "arguments")
    test.set_defaults(func=cmd_test)


def cmd_test(args: argparse.Namespace) -> int:
    separated = args.command_args[:1] == ["--"]
    command = args.command_args[1:] if separated else args.command_args
    if not separated and "--" in command:
        # argparse gives everything after PROFILE to the command: `out/x --json -- cmd` would run "--json".
        stray = " ".join(command[:command.index("--")])
        raise UsageError(f"{stray!r} comes after {args.target} and before --, where it would be part of the command",
                         "put pmem-image test's options before PROFILE|out/NAME and the command after --")
    if not command:
        raise UsageError("pmem-image test needs a command", "give it after --: pmem-image test PROFILE -- make check")
    plan, directory = resolve_target(args)
    user = choose_user(plan, args.user)
    shares = parse_shares(args.share, plan, Path.cwd())
    # The steps (qemu-img, QEMU's command line) are not the command's output: they are not shown.
    result = run_test(plan, directory, command, user, shares, Runner(out=io.StringIO()), accel=args.accel,
                      timeout=args.timeout, state=args.state)
    if result.status == "timeout":
        print(f"pmem-image test: timed out after {args.timeout:g}s; the guest was stopped (exit {EXIT_TIMED_OUT})",
              file=sys.stderr)
    if args.junit:
        args.junit.write_text(junit_xml([_suite(plan.name, command, result)]))
    if args.json:
        print(json.dumps({"exit_code": result.exit_code, "status": result.status,
                          "command_exit_code": result.exit_code if result.status == "exit" else None,
                          "user": user, "boot_seconds": result.boot_seconds,
                          "command_seconds": result.command_seconds, "accel": result.accel, "boot": result.boot}))
    return result.exit_code


def _suite(name: str, command: list[str], result: TestResult) -> Suite:
    passed = result.status == "exit" and result.exit_code == 0
    detail = f"exit {result.exit_code}" if result.status == "exit" else "timed out"
    evidence = result.tails.get("stderr", b"").decode(errors="replace").splitlines()[-40:] if not passed else []
    return Suite(name, [Check(" ".join(command)[:200], passed, detail, evidence)],
                 result.boot_seconds + result.command_seconds, result.accel)
