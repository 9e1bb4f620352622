"""Proof rows for data that must outlive a boot (pure): a seeded pattern (and with PMDK a pool) written by
one boot and read back by the next, after a warm reset in the same QEMU process (--warm-reboot) or after
QEMU exited and a new process booted the same disk and state files (--power-cycle). memmap pmem is RAM:
a power-off must lose it, and the row says so and passes only when it did."""

from typing import Callable, Optional

from ..plan.backends import ProofExpectations
from ..plan.model import Plan
from .pmdk_proof import seeded_pool_check
from .result import Check


def _seeded(report: Optional[dict], key: str) -> dict:
    return {r.get("mountpoint"): r for r in (report or {}).get(key) or []}


def _survived(result: Optional[dict]) -> bool:
    return result is not None and result.get("check_seed") == "ok"


def warm_reboot_checks(plan: Plan, report: dict) -> list[Check]:
    results = _seeded(report, "warm_reboot")
    checks = []
    for region in plan.regions:
        if region.mountpoint is None:
            continue
        result = results.get(region.mountpoint)
        ok = _survived(result)
        checks.append(Check(f"/dev/{region.device} survives warm reboot", ok,
                            "seeded pattern written before the reset read back intact" if ok else
                            f"check after reboot: {result and result['check_seed']}",
                            [result["output"]] if result and not ok else []))
        if plan.pmdk and region.mode == "fsdax":
            checks.append(seeded_pool_check(f"/dev/{region.device}", result))
    return checks


def _kept_check(dev: str, second: dict) -> Check:
    """After a power-off an NVDIMM's namespace must come back from its labels, not be made again."""
    setup = next((s for s in second.get("namespace_setup") or [] if f"/dev/{s.get('device')}" == dev), None)
    action = (setup or {}).get("action")
    return Check(f"{dev} namespace found in its labels", action == "kept",
                 f"second boot: {setup.get('namespace')} {setup.get('result')} ({action})" if setup else
                 "second boot: pmem-namespaces reported nothing for it")


def power_cycle_checks(plan: Plan, second: Optional[dict], expect: ProofExpectations,
                       judge: Callable[[Plan, Optional[dict]], list[Check]], first: Optional[dict] = None) -> list[Check]:
    """Rows of the boot after QEMU exited: that boot's whole proof, then per mount what became of the seeds
    (`first`: the first boot's report, which says whether it wrote them)."""
    if second is None:
        return [Check("power-cycle: second boot report", False, "the new QEMU process's guest wrote no report")]
    rows = judge(plan, second)
    failed = [c.name for c in rows if not c.passed]
    checks = [Check("power-cycle: second boot proof", not failed,
                    f"a new QEMU process on the same disk{' and pmem backing files' if expect.survives_power_off else ''}: "
                    + (f"all {len(rows)} checks pass" if not failed else f"{len(failed)} of {len(rows)} fail"), failed)]
    results = _seeded(second, "power_cycle")
    for region in plan.regions:
        dev = f"/dev/{region.device}"
        if expect.nfit:
            checks.append(_kept_check(dev, second))
        if region.mountpoint is None:
            continue
        result = results.get(region.mountpoint)
        if expect.survives_power_off:
            ok = _survived(result)
            checks.append(Check(f"{dev} survives power-off", ok,
                                "seeded pattern written before QEMU exited read back by a new QEMU process" if ok
                                else f"check after power-off: {result and result['check_seed']}",
                                [result["output"]] if result and not ok else []))
            if plan.pmdk and region.mode == "fsdax":
                checks.append(seeded_pool_check(dev, result, "power-off"))
            continue
        # memmap pmem is RAM: the pattern must be gone. Had it survived, QEMU did not really power off; had the
        # first boot not written it, its absence would prove nothing (review L7).
        written = _seeded(first, "seeded").get(region.mountpoint, {}).get("seed") == "ok"
        lost = written and result is not None and result.get("check_seed") == "failed"
        seen = "the first boot did not write the seeds, so their absence proves nothing" if not written else \
            "the seeds were not checked" if result is None else \
            "the pattern survived, so the guest's RAM was not really lost" if not lost else ""
        checks.append(Check(f"{dev} power-off loses memmap pmem (expected)", lost,
                            "the seeded pattern is gone after QEMU exited: memmap pmem is RAM "
                            "(pmem_backend: nvdimm keeps it in a host file)" if lost else seen))
    return checks
