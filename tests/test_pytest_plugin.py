"""The pytest plugin as a lab's test suite uses it: loaded by its entry point, run by pytester."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from samplegen import scenarios
from samplegen.scenarios import KeyRing

from capana import analyze
from capana.pytest_plugin import assert_all_phones_used, assert_device_used, assert_no_findings

pytest_plugins = ["pytester"]

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"

LAB_TESTS = f"""
from capana.pytest_plugin import (
    assert_all_phones_used,
    assert_device_used,
    assert_no_findings,
    assert_no_rejected_handshakes,
)

REBOOT = {str(PCAPS / "phone-reboot.pcapng")!r}
TRUST = {str(PCAPS / "phone-reboot-trust")!r}


def test_mics(capana_report):
    report = capana_report(REBOOT, trust=TRUST)
    assert_device_used(report, "SEP2C3124C9F80D", kind="MIC", issuer="Cisco Manufacturing CA SHA2")
    assert_device_used(report, "SEP2C3124C9F80B", kind="LSC", issuer="CAPF-0992727f")


def test_all_lsc_from_our_capf(capana_report):
    assert_all_phones_used(capana_report(REBOOT, trust=TRUST), kind="LSC", issuer="CAPF-0992727f")


def test_nothing_rejected(capana_report):
    assert_no_rejected_handshakes(capana_report(REBOOT, trust=TRUST))


def test_no_errors(capana_report):
    assert_no_findings(capana_report(REBOOT, trust=TRUST), severity="error")


def test_moved_phone_is_a_mic(capana_report):
    assert_device_used(capana_report(REBOOT, trust=TRUST), "SEP2C3124C9F80F", kind="MIC")


def test_unknown_phone(capana_report):
    assert_device_used(capana_report(REBOOT), "SEP000000000000", kind="LSC")
"""


def test_plugin_is_registered_for_pytest() -> None:
    points = entry_points(group="pytest11")
    assert any(p.value == "capana.pytest_plugin" for p in points), (
        "capana's pytest11 entry point is missing: reinstall with pip install -e '.[test]'"
    )


def test_lab_suite_failures_name_the_phone_and_the_reason(pytester: pytest.Pytester) -> None:
    # The plugin is not named here: pytest finds it through capana's pytest11 entry point.
    pytester.makepyfile(test_lab=LAB_TESTS)
    outcome = pytester.runpytest("-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=1, failed=5)
    text = outcome.stdout.str()
    # Two MIC phones and the phone with another cluster's LSC, each by name, model and address.
    assert "3 of 5 phone(s) did not present an LSC from CAPF-0992727f:" in text
    assert (
        "SEP2C3124C9F80D (CP-7841, 10.20.1.23): presented a MIC issued by "
        "Cisco Manufacturing CA SHA2 on sip-tls" in text
    )
    assert (
        "SEP2C3124C9F80F (CP-8865, 10.20.1.25): presented an LSC issued by CAPF-5b1e77a3, "
        "not CAPF-0992727f" in text
    )
    assert "2 handshake(s) rejected:" in text
    assert (
        "SEP2C3124C9F80F (CP-8865, 10.20.1.25): 10.20.1.25:50355 -> 10.10.1.5:2443 (sccp-tls): "
        "server sent unknown_ca, phone presented LSC from CAPF-5b1e77a3; lsc-from-other-cluster"
        in text
    )
    assert "error lsc-from-other-cluster: SEP2C3124C9F80F: LSC issued by 'CAPF-5b1e77a3'" in text
    assert "presented an LSC issued by CAPF-5b1e77a3 on sccp-tls" in text
    assert "SEP000000000000 is not in the capture (devices seen: SEP2C3124C9F80B," in text
    # The helpers hide their own frames: the traceback points at the lab's test.
    assert "pytest_plugin.py" not in text


def test_unreadable_capture_fails_the_test(pytester: pytest.Pytester) -> None:
    (pytester.path / "notes.pcap").write_text("not a capture")
    pytester.makepyfile(
        """
        from capana.pytest_plugin import assert_no_rejected_handshakes

        def test_capture(capana_report):
            assert_no_rejected_handshakes(capana_report("notes.pcap"))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*capana: *notes.pcap: not a pcap or pcapng file*"])


def test_an_lsc_named_after_the_capf_but_signed_by_its_old_key_does_not_pass(
    tmp_path: Path,
) -> None:
    """CAPF regenerated: the phone's LSC carries the right issuer name, from the wrong key."""
    scenario = scenarios.capf_regenerated(tmp_path, keys=KeyRing())
    report = analyze(scenario.capture, trust={"callmanager": scenario.trust_dir})
    with pytest.raises(AssertionError, match="untrusted against callmanager"):
        assert_all_phones_used(report, kind="LSC", issuer="CAPF-0992727f")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: assert_all_phones_used(r, kind="lsc"), "kind='lsc': use one of 'LSC', 'MIC'"),
        (lambda r: assert_device_used(r, "SEP1", kind="CAPF"), "kind='CAPF': use one of"),
        (
            lambda r: assert_no_findings(r, severity="fatal"),
            "severity='fatal': use one of 'info', 'warning', 'error'",
        ),
    ],
    ids=["lower-case-kind", "capf-kind", "fatal-severity"],
)
def test_wrong_arguments_say_which_values_are_valid(call, message: str) -> None:
    """A typo in a lab test is a usage error naming the valid values, not a bare ValueError
    from deep inside, nor a pass."""
    report = analyze(PCAPS / "phone-reboot.pcapng", trust=PCAPS / "phone-reboot-trust")
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call(report)
