"""One row of a proof: what was checked, whether it held, in words, and the guest's evidence when not."""

from dataclasses import dataclass, field


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    evidence: list[str] = field(default_factory=list)
