"""jobs/quality.py: the gate's one-line messages (pure)."""

from __future__ import annotations

from jobs.quality import EMPTY, MISSING, FailedExpectation, ValidationOutcome

DOCS = "file:///gx/index.html"


def _outcome(*failures: FailedExpectation, evaluated: int = 9, partition: str | None = None) -> ValidationOutcome:
    return ValidationOutcome("raw.orders", "2026-03-30", rows=96, evaluated=evaluated, failures=list(failures),
                             data_docs=DOCS, partition=partition)


def test_a_failed_expectation_names_column_counts_and_data_docs():
    message = _outcome(FailedExpectation("expect_column_values_to_not_be_null", "amount", 96, 96)).message()
    assert message == ("raw.orders ds=2026-03-30: 1 of 9 checks failed: expect_column_values_to_not_be_null"
                       f"(column=amount): 96 unexpected of 96 rows (Data Docs: {DOCS})")


def test_a_failed_check_beyond_the_suite_does_not_point_at_data_docs():
    # Data Docs show the suite's results, which passed: pointing there would send the reader astray.
    message = _outcome(FailedExpectation("scale", "amount", None, None, "median 4,042.50, 95.5x ...")).message()
    assert message == "raw.orders ds=2026-03-30: 1 of 9 checks failed: scale(column=amount): median 4,042.50, 95.5x ..."


def test_missing_empty_and_snapshot_partitions_say_so():
    missing = _outcome(FailedExpectation(MISSING, None, None, None), evaluated=0).message()
    empty = _outcome(FailedExpectation(EMPTY, None, None, None), evaluated=0).message()
    assert missing.endswith("ds=2026-03-30: no partition: the data has not arrived (or the upstream stage has not run)")
    assert empty.endswith("ds=2026-03-30: the partition exists but holds no rows")
    passed = _outcome(partition="2026-03-28").message()
    assert passed == "raw.orders ds=2026-03-30 (snapshot ds=2026-03-28): all 9 checks passed on 96 rows"
