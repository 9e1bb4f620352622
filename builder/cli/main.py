"""pmem-image: the command line. Parses arguments, runs pipeline stages, maps errors to exit codes."""

import argparse
import hashlib
import os
import json
import sys
import traceback
from pathlib import Path

from .. import __version__
from .options import add_verify_options
from ..build.flushtest import run_on_host
from ..build import mkosi as mkosi_tool
from ..build.pipeline import build
from ..build.tree import write_tree
from ..plan.model import Plan
from ..profile.errors import (EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PROOF_FAILED,
                              EXIT_TOOL_FAILED, PmemImageError, Problem, UsageError, os_error_text)
from ..profile.schema import profile_schema
from ..render.outputs import render
from ..runner import Runner, Terminated, raise_on_termination
from ..verify import session
from ..verify.boot import checks_table, verify
from ..verify.junit import Suite, junit_xml
from . import housekeeping, locking, many, matrix, publish, testcmd
from .targets import load_plan, machine_build_lock, out_root, resolve_target
from .views import plan_text


def _print_warnings(warnings: list[Problem], filename: str) -> None:
    for warning in warnings:
        print(warning.format(filename), file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    results, failed = [], False
    for path in args.profiles:
        try:
            plan, warnings = load_plan(path, tuple(args.allow_path))
        except PmemImageError as error:
            failed = True
            problems = getattr(error, "problems", [Problem((), error.message, error.hint)])
            results.append({"file": str(path), "valid": False, "problems": [p.as_dict(str(path)) for p in problems]})
            if not args.json:
                print(error.format(), file=sys.stderr)
            continue
        results.append({"file": str(path), "valid": True, "name": plan.name,
                        "warnings": [w.as_dict(str(path)) for w in warnings]})
        if not args.json:
            _print_warnings(warnings, str(path))
            print(f"{path}: ok ({plan.name}: {plan.distribution} {plan.release}, {len(plan.regions)} pmem region"
                  f"{'s' if len(plan.regions) != 1 else ''})")
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_BAD_INPUT if failed else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    plan, warnings = load_plan(args.profile, tuple(args.allow_path))
    _print_warnings(warnings, str(args.profile))
    if args.json:
        print(json.dumps({"identity_hash": plan.digest(), "identity": plan.identity(), "view": plan.view()}, indent=2))
    else:
        print(plan_text(plan, str(args.profile)), end="")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    plan, warnings = load_plan(args.profile, tuple(args.allow_path))
    _print_warnings(warnings, str(args.profile))
    files = render(plan)
    write_tree(files, args.output)
    if args.json:
        print(json.dumps({"directory": str(args.output), "files": sorted(files), "hash": plan.digest()}, indent=2))
    else:
        print(f"rendered {len(files)} files for {plan.name} into {args.output}; build with: mkosi -C {args.output} build")
    return EXIT_OK


def _build_one(path: Path, plan: Plan, warnings: list[Problem], args: argparse.Namespace) -> tuple[str, int, str]:
    """Build one profile (and verify it with --verify): (result, exit code, detail)."""
    _print_warnings(warnings, str(path))
    runner = Runner(dry_run=args.dry_run)
    if not args.dry_run:
        mkosi_tool.require_root()
    profile_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    result = build(plan, render(plan), out_root(args), runner, mkosi_version=mkosi_tool.mkosi_version(runner),
                   force=args.force or args.cold, profile_sha256=profile_sha, substitute=args.substitute, trusted_keys=args.trusted_keys,
                   offline=args.offline, cold=args.cold, machine_lock=machine_build_lock())
    if args.json and not args.verify:
        print(json.dumps({"exit_code": EXIT_OK, "directory": str(result.directory), "rebuilt": result.rebuilt,
                          "manifest": result.manifest}, indent=2))
    if args.verify and not args.dry_run:
        return _verify_and_report(plan, result.directory, runner, args)
    return ("pulled" if result.pulled else "built" if result.rebuilt else "up to date"), EXIT_OK, ""


def _verify_and_report(plan: Plan, directory: Path, runner: Runner, args: argparse.Namespace) -> tuple[str, int, str]:
    result = verify(plan, directory, runner, accel=args.accel, timeout=args.timeout, warm_reboot=args.warm_reboot,
                    export_format=args.export_format, cloud_init=args.cloud_init, power_cycle=args.power_cycle,
                    state=args.state, fast=args.fast)
    code = EXIT_OK if result.passed else EXIT_PROOF_FAILED
    args.suites.append(Suite(plan.name, result.checks, result.seconds, result.accel))
    if args.json:
        print(json.dumps({"exit_code": code, **json.loads(result.report_path.read_text())}, indent=2))
    else:
        print(checks_table(result.checks))
        print(f"\n{plan.name}: {'PASSED' if result.passed else 'FAILED'} ({result.accel}, {result.boot} boot, report after "
              f"{result.seconds:.0f}s); details in {result.report_path}")
    failed = sum(not c.passed for c in result.checks)
    return ("passed" if result.passed else "proof failed"), code, f"{failed} of {len(result.checks)} checks fail" \
        if failed else f"{len(result.checks)} checks"


def _write_junit(args: argparse.Namespace) -> None:
    if getattr(args, "junit", None):
        args.junit.write_text(junit_xml(args.suites))


def _over_many(args: argparse.Namespace, targets: list[Path], load, work) -> int:
    """build/verify of several profiles: all checked first, then each in order, a summary at the end."""
    loaded = many.check_all(targets, load)
    many.check_distinct_names({target: loaded[target][0].name for target in targets})
    single_json, args.json = args.json, False        # one JSON document at the end, not one per profile
    jobs = args.jobs or many.machine_jobs()
    outcomes = many.run_all(targets, lambda t: many.timed(t, loaded[t][0].name, lambda: work(t, loaded[t])),
                            args.keep_going, jobs)
    skipped = targets[len(outcomes):]
    _write_junit(args)
    code = many.exit_code(outcomes)
    print("\n" + many.summary(outcomes, skipped), file=sys.stderr)
    if single_json:
        print(json.dumps({"exit_code": code, "profiles": [vars(o) for o in outcomes],
                          "not_run": [str(p) for p in skipped]}, indent=2))
    return code


def cmd_build(args: argparse.Namespace) -> int:
    targets = many.expand(args.profiles)
    allowed = tuple(args.allow_path)
    if len(targets) == 1:
        code = _build_one(targets[0], *load_plan(targets[0], allowed), args)[1]
        _write_junit(args)
        return code
    return _over_many(args, targets, lambda t: load_plan(t, allowed),
                      lambda t, loaded: _build_one(t, loaded[0], loaded[1], args))


def cmd_verify(args: argparse.Namespace) -> int:
    targets = many.expand(args.targets)
    if len(targets) == 1:
        plan, directory = resolve_target(args, targets[0])
        code = _verify_and_report(plan, directory, Runner(), args)[1]
        _write_junit(args)
        return code
    return _over_many(args, targets, lambda t: resolve_target(args, t),
                      lambda t, loaded: _verify_and_report(loaded[0], loaded[1], Runner(), args))


def cmd_run(args: argparse.Namespace) -> int:
    plan, directory = resolve_target(args)
    return session.run(plan, directory, Runner(), accel=args.accel, ssh_port=args.ssh_port, persist=args.persist,
                       state=args.state)


def cmd_ssh(args: argparse.Namespace) -> int:
    directory = args.name if args.name.is_dir() else out_root(args) / args.name
    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    return Runner().interactive(session.ssh_argv(directory, directory.name, args.user, args.identity, command))


def cmd_flush_test(args: argparse.Namespace) -> int:
    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    return run_on_host(arguments, out_root(args) / ".cache" / "bin")


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(profile_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmem-image", description="Build bootable persistent-memory emulation images from YAML profiles.")
    parser.add_argument("--version", action="version", version=f"pmem-image {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    allow = argparse.ArgumentParser(add_help=False)
    allow.add_argument("--allow-path", type=Path, action="append", default=[], metavar="DIR",
                       help="let the profile's kernel.url/kernel.path name files under DIR (outside its directory)")

    validate = commands.add_parser("validate", parents=[allow], help="check profiles, write nothing")
    validate.add_argument("profiles", nargs="+", type=Path, metavar="PROFILE")
    validate.add_argument("--json", action="store_true", help="machine-readable results")
    validate.set_defaults(func=cmd_validate)

    plan = commands.add_parser("plan", parents=[allow], help="show the resolved plan: regions, cmdline, fstab, memory map")
    plan.add_argument("profile", type=Path, metavar="PROFILE")
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    plan.set_defaults(func=cmd_plan)

    render_ = commands.add_parser("render", parents=[allow], help="write the mkosi 24.3 project for a profile")
    render_.add_argument("profile", type=Path, metavar="PROFILE")
    render_.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="directory to write")
    render_.add_argument("--force", action="store_true", help="accepted for old scripts; DIR is replaced only when it is "
                                                             "empty or an earlier render, --force or not")
    render_.add_argument("--json", action="store_true", help="machine-readable result")
    render_.set_defaults(func=cmd_render)

    build_ = commands.add_parser("build", parents=[allow], help="build the image with mkosi into out/<name>/ (no-op if unchanged)")
    build_.add_argument("profiles", type=Path, nargs="+", metavar="PROFILE",
                        help="profile files, or directories of them (built in order, a summary at the end)")
    build_.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
    build_.add_argument("--cold", action="store_true", help="rebuild from scratch: install the packages afresh "
                        "instead of reusing the package layer (implies --force)")
    build_.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    build_.add_argument("--verify", action="store_true", help="then boot it in QEMU and prove pmem + DAX")
    build_.add_argument("--offline", action="store_true", help="no network: packages and their lists from the "
                        "package store only (a locked profile whose packages it holds)")
    build_.add_argument("--substitute", metavar="REGISTRY/REPO", help="a binary cache (pmem-image push): pull and "
                        "check the build whose key is tagged there instead of building it")
    build_.add_argument("--trusted-keys", type=Path, metavar="FILE", default=os.environ.get("PMEM_IMAGE_TRUSTED_KEYS"),
                        help="OpenSSH allowed_signers: --substitute takes only builds signed by these keys")
    add_verify_options(build_)
    build_.set_defaults(func=cmd_build)

    verify_ = commands.add_parser("verify", parents=[allow], help="boot a built image in QEMU and prove pmem + DAX from inside")
    verify_.add_argument("targets", type=Path, nargs="+", metavar="PROFILE|out/NAME",
                         help="profiles, directories of profiles, or build directories")
    add_verify_options(verify_)
    verify_.set_defaults(func=cmd_verify)

    flush = commands.add_parser("flush-test", help="compile and run the pmem flush test on this host",
                                description="Arguments after -- go to pmem-flush-test, e.g. -- --method all /mnt/pmem0")
    flush.add_argument("--out", type=Path, help="output root holding the compiled binary's cache")
    flush.add_argument("arguments", nargs=argparse.REMAINDER, help="pmem-flush-test arguments (try -- --help)")
    flush.set_defaults(func=cmd_flush_test)

    run_ = commands.add_parser("run", parents=[allow], help="boot the image by hand: serial console here, SSH "
                                                            "forwarded to 127.0.0.1")
    run_.add_argument("target", type=Path, metavar="PROFILE|out/NAME")
    run_.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    run_.add_argument("--ssh-port", type=int, metavar="N", help="host port for the guest's SSH (default: a free one)")
    run_.add_argument("--persist", action="store_true", help="keep the guest's writes (out/.state/NAME/run/overlay.qcow2)")
    run_.add_argument("--state", type=Path, metavar="DIR",
                      help="nvdimm, virtio-pmem: the pmem backing files (default out/.state/NAME/pmem-LAYOUT/; always kept)")
    run_.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    run_.set_defaults(func=cmd_run)

    ssh = commands.add_parser("ssh", help="log into an image started with pmem-image run")
    ssh.add_argument("name", type=Path, metavar="NAME|out/NAME")
    ssh.add_argument("--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)")
    ssh.add_argument("--user", help="log in as this user (default: the first user with SSH keys)")
    ssh.add_argument("-i", "--identity", type=Path, metavar="KEY", help="private key file for ssh -i")
    ssh.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="a command to run")
    ssh.set_defaults(func=cmd_ssh)

    publish.add_parsers(commands, allow)
    testcmd.add_parser(commands, allow)
    matrix.add_parser(commands, allow)
    locking.add_parsers(commands, allow)
    schema = commands.add_parser("schema", help="print the profile's JSON Schema (for editors)")
    schema.set_defaults(func=cmd_schema)
    housekeeping.add_parsers(commands, lambda p: p.add_argument(
        "--out", type=Path, help="output root (default: out/, or $PMEM_IMAGE_OUT)"))
    return parser


def _report_error(args: argparse.Namespace, code: int, message: str) -> int:
    """On stderr for people; with --json also as one JSON object on stdout carrying the same exit code."""
    print(message, file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"exit_code": code, "error": message}, indent=2))
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.suites = []                 # verify's proofs, for --junit
    raise_on_termination()
    try:
        return args.func(args, out_root(args)) if getattr(args, "needs_out", False) else args.func(args)
    except PmemImageError as error:
        text = error.format() if error.exit_code == EXIT_BAD_INPUT and not isinstance(error, UsageError) \
            else f"pmem-image: error: {error.format()}"
        return _report_error(args, error.exit_code, text)
    except (KeyboardInterrupt, Terminated):
        return _report_error(args, EXIT_INTERRUPTED, "pmem-image: interrupted; earlier outputs are unchanged")
    except OSError as error:      # the host's side (a full disk, no permission, a read-only place), not a bug (L1)
        return _report_error(args, EXIT_TOOL_FAILED, f"pmem-image: error: {os_error_text(error)}")
    except Exception as error:  # a bug: short message unless --debug
        if args.debug:
            traceback.print_exc()
        return _report_error(args, EXIT_INTERNAL, f"pmem-image: internal error: {type(error).__name__}: {error} "
                                                  "(run with --debug for details)")
