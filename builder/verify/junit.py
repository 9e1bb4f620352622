"""The proof as JUnit XML (pure): one testsuite per image, one testcase per proof row, a failure with the
row's detail and its evidence (serial-log lines), so CI systems show proofs as tests."""

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .boot import printable
from .result import Check


@dataclass(frozen=True)
class Suite:
    name: str                 # the image (profile name)
    checks: list[Check]
    seconds: float
    accel: str


def junit_xml(suites: list[Suite]) -> str:
    root = ET.Element("testsuites", name="pmem-image verify", tests=str(sum(len(s.checks) for s in suites)),
                      failures=str(sum(not c.passed for s in suites for c in s.checks)),
                      time=f"{sum(s.seconds for s in suites):.1f}")
    for suite in suites:
        failures = sum(not c.passed for c in suite.checks)
        element = ET.SubElement(root, "testsuite", name=suite.name, tests=str(len(suite.checks)),
                                failures=str(failures), errors="0", time=f"{suite.seconds:.1f}")
        properties = ET.SubElement(element, "properties")
        ET.SubElement(properties, "property", name="accel", value=suite.accel)
        for check in suite.checks:
            case = ET.SubElement(element, "testcase", classname=f"pmem-image.{suite.name}", name=printable(check.name))
            if check.passed:
                ET.SubElement(case, "system-out").text = printable(check.detail)
            else:
                failure = ET.SubElement(case, "failure", message=printable(check.detail), type="ProofFailed")
                failure.text = "\n".join(printable(line) for line in check.evidence) or printable(check.detail)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
