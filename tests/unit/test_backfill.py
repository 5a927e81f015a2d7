"""app/backfill.py: what a backfill reports (pure logic; the scheduler itself is in tests/integration/test_stack_backfill.py)."""

from __future__ import annotations

from app.backfill import DateOutcome, summary


def test_summary_counts_each_action():
    outcomes = [DateOutcome("2026-06-01", "created", run_id="r1"),
                DateOutcome("2026-06-02", "reprocessed", run_id="r2"),
                DateOutcome("2026-06-03", "skipped", "already exists")]
    assert summary(outcomes, "failed") == "1 created, 1 reprocessed, 1 skipped"


def test_a_backfill_that_runs_nothing_says_so_and_how_to_rerun():
    skipped = [DateOutcome("2026-06-01", "skipped", "already exists")]
    assert summary(skipped, "none") == ("0 created, 0 reprocessed, 1 skipped; nothing to run (dates that already "
                                        "ran are skipped: --reprocess completed runs them again)")
    assert summary(skipped, "completed") == "0 created, 0 reprocessed, 1 skipped; nothing to run"
