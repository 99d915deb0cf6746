"""results/junit.xml: one test case per threshold, so CI systems show each one."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.measure.thresholds import Verdict
from harness.output.atomic import write_text_atomically


def junit_xml(scenario: str, verdicts: list[Verdict], duration_s: float) -> str:
    """The JUnit XML document for these verdicts."""
    failures = sum(not v.passed for v in verdicts)
    suite = ET.Element("testsuite", name=f"fleetstorm.{scenario}", tests=str(len(verdicts)),
                       failures=str(failures), errors="0", time=f"{duration_s:.3f}")
    for verdict in verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"fleetstorm.{scenario}.thresholds", name=verdict.expr)
        observed = "not measured" if verdict.observed is None else f"{verdict.observed:.6g}"
        if not verdict.passed:
            failure = ET.SubElement(case, "failure", message=f"observed {observed}", type="ThresholdFailed")
            failure.text = f"{verdict.expr}: observed {observed}. {verdict.detail}".strip()
        else:
            ET.SubElement(case, "system-out").text = f"observed {observed}. {verdict.detail}".strip()
    suites = ET.Element("testsuites", tests=str(len(verdicts)), failures=str(failures))
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: Path, scenario: str, verdicts: list[Verdict], duration_s: float) -> None:
    write_text_atomically(path, junit_xml(scenario, verdicts, duration_s))
