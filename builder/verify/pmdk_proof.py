"""Proof rows of PMDK on the image (pure): libpmem2 and libpmem see pmem where DAX is, a libpmemobj pool
made there holds a transaction across close and re-open, pmempool calls it consistent, and (warm reboot)
a pool written before the reset still opens with its value."""

from typing import Optional

from .result import Check

# libpmem2's store granularity on real DAX with MAP_SYNC: CACHE_LINE (flush needed) or BYTE (eADR);
# PAGE means PMDK does not see pmem and falls back to msync.
PMEM_GRANULARITIES = ("CACHE_LINE", "BYTE")


def _sees_pmem(dev: str, what: str, result: Optional[dict]) -> Check:
    result = result or {}
    pmem2 = result.get("pmem2") or {}
    granularity, is_pmem = pmem2.get("granularity"), result.get("pmem_is_pmem")
    passed = granularity in PMEM_GRANULARITIES and is_pmem is True and pmem2.get("read_back") is True
    detail = (f"libpmem2 store granularity {granularity or pmem2.get('error') or result.get('error') or 'not reported'}"
              f", pmem_is_pmem {'true' if is_pmem else 'false' if is_pmem is False else 'not reported'}"
              f" ({what}, PMEM_IS_PMEM_FORCE unset)")
    return Check(f"{dev} PMDK sees pmem", passed, detail)


def _sees_page_granularity(dev: str, what: str, result: Optional[dict]) -> Check:
    """virtio-pmem: the kernel refuses MAP_SYNC, so libpmem2 must report PAGE (flush by msync/fsync, which the
    guest passes to the host) and pmem_is_pmem() false; CPU flushes alone would not make stores durable."""
    result = result or {}
    pmem2 = result.get("pmem2") or {}
    granularity, is_pmem = pmem2.get("granularity"), result.get("pmem_is_pmem")
    passed = granularity == "PAGE" and is_pmem is False and pmem2.get("read_back") is True
    detail = (f"libpmem2 store granularity {granularity or pmem2.get('error') or result.get('error') or 'not reported'}"
              f", pmem_is_pmem {'true' if is_pmem else 'false' if is_pmem is False else 'not reported'}"
              f" ({what}; expected PAGE and false: without MAP_SYNC PMDK must msync)")
    return Check(f"{dev} PMDK flushes by msync", passed, detail)


def _pmempool_consistent(result: dict) -> bool:
    verdict = result.get("pmempool_check") or {}
    # pmempool's verdict line is "FILE: consistent" ("FILE: not consistent" otherwise).
    lines = (verdict.get("output") or "").splitlines()
    return verdict.get("exit") == 0 and any(l.endswith(": consistent") and not l.endswith(": not consistent")
                                            for l in lines)


def mount_pmdk_checks(dev: str, mount: dict, cpu_flush_durable: bool = True) -> list[Check]:
    result = mount.get("pmdk")
    if not isinstance(result, dict):
        return [Check(f"{dev} PMDK sees pmem", False, "no PMDK result (pmem-pmdk-check missing from the image?)")]
    pool = result.get("pool") or {}
    held = pool.get("created") is True and pool.get("reopened") is True and pool.get("value_read_back") is True
    consistent = _pmempool_consistent(result)
    verdict = (result.get("pmempool_check") or {}).get("output") or ""
    pool_row = Check(f"{dev} PMDK pool", held and consistent,
                     f"libpmemobj pool of {(pool.get('size') or 0) >> 20} MiB created in "
                     f"{pool.get('create_seconds', 0):.2f} s; transaction "
                     f"{'read back after close and re-open' if held else 'not read back: ' + str(pool.get('error'))}; "
                     f"pmempool check: {'consistent' if consistent else 'not consistent'}",
                     [] if consistent else verdict.splitlines()[-5:])
    sees = _sees_pmem if cpu_flush_durable else _sees_page_granularity
    return [sees(dev, f"a file on {mount.get('mountpoint')}", result), pool_row]


def devdax_pmdk_checks(dev: str, result: Optional[dict]) -> list[Check]:
    return [_sees_pmem(dev, "the device itself", result)]


def seeded_pool_check(dev: str, result: Optional[dict], after: str = "warm reboot") -> Check:
    """The pool written before the warm reset (or the power-off): opens, holds the value, and pmempool calls
    it consistent."""
    pool = (result or {}).get("pmdk_pool") or {}
    held = pool.get("ok") is True and pool.get("read") == pool.get("expected")
    consistent = _pmempool_consistent(pool)
    return Check(f"{dev} PMDK pool survives {after}", held and consistent,
                 f"pool {pool.get('pool', 'not reported')}: value {pool.get('read')} (expected {pool.get('expected')}), "
                 f"pmempool check {'consistent' if consistent else 'not consistent'}",
                 [] if held and consistent else [str(pool.get("error"))])
