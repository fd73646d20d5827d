import pytest

from benchkit.sandbox import Sandbox
from benchkit.selfcheck import KNOWN_BAD, selfcheck
from tests.conftest import benchkit_cli


@pytest.mark.slow
def test_selfcheck_passes_here_and_reports_calibration():
    with Sandbox(2) as sandbox:
        report = selfcheck(sandbox, timeout=3.0)
    assert report.ok, report.problems
    assert report.canonical_passed == report.canonical_total == 164
    assert 0 < report.slowest_canonical_s < 3.0 and report.reference_loop_s > 0


@pytest.mark.slow
def test_a_too_tight_time_limit_is_warned_about():
    with Sandbox(2) as sandbox:
        report = selfcheck(sandbox, timeout=0.05)
    assert any("raise --timeout" in w for w in report.warnings)


@pytest.mark.needs_bwrap
@pytest.mark.slow
def test_cli_selfcheck():
    done = benchkit_cli("selfcheck")
    assert done.returncode == 0, done.stderr
    assert "selfcheck: ok" in done.stdout and "164/164" in done.stdout
    assert f"{len(KNOWN_BAD)}/{len(KNOWN_BAD)}" in done.stdout and "isolation: bwrap" in done.stdout


@pytest.mark.slow
def test_a_benchmark_self_checks_its_own_harness():
    from benchkit.benchmarks.lcb import LiveCodeBench
    from benchkit.selfcheck import benchmark_program_verdicts, submit_benchmark_programs

    class WrongExpectations(LiveCodeBench):  # a harness that grades right, checked against wrong claims
        @classmethod
        def selfcheck_programs(cls, timeout, memory_mb):
            return [
                (name, job, "passed" if expected != "passed" else "failed")
                for name, job, expected in super().selfcheck_programs(timeout, memory_mb)
            ]

    with Sandbox(2) as sandbox:
        checked, problems = benchmark_program_verdicts(
            submit_benchmark_programs(sandbox, [LiveCodeBench], 1.0, 2048)
        )
        _, wrong = benchmark_program_verdicts(
            submit_benchmark_programs(sandbox, [WrongExpectations], 1.0, 2048)
        )
    assert problems == [] and len(checked) == 5 and checked[0].startswith("lcb: ")
    assert len(wrong) == 5 and "self-check program 'lcb: stdin, right' gave passed" in wrong[0]


@pytest.mark.slow
def test_a_run_self_checks_the_harness_of_its_benchmark():
    from benchkit.benchmarks.lcb import LiveCodeBench

    with Sandbox(2) as sandbox:
        report = selfcheck(sandbox, 3.0, benchmarks=[LiveCodeBench])
    assert report.ok and len(report.benchmark_checked) == 5
