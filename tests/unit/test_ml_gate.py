"""The promotion gate's rule: promote only if held-out macro-F1 and day-to-day stability are not worse."""

from __future__ import annotations

from ml.gate import ModelScore, decide


def test_gate_needs_f1_and_stability_not_worse():
    champion = ModelScore("1", macro_f1=0.90, stability=0.95, stability_users=100)
    better_f1_less_stable = ModelScore("2", macro_f1=0.93, stability=0.94, stability_users=100)
    promoted, reasons = decide(better_f1_less_stable, champion, "2024-03-30")
    assert not promoted and "0.9400 < champion 0.9500" in reasons[1]
    equal = ModelScore("2", macro_f1=0.90, stability=0.95, stability_users=100)
    assert decide(equal, champion, "2024-03-30")[0]  # "not worse" includes a tie
    worse_f1 = ModelScore("2", macro_f1=0.89, stability=0.99, stability_users=100)
    assert not decide(worse_f1, champion, "2024-03-30")[0]


def test_gate_without_an_earlier_partition_compares_f1_only_and_says_so():
    champion = ModelScore("1", 0.90, None, 0)
    promoted, reasons = decide(ModelScore("2", 0.91, None, 0), champion, None)
    assert promoted
    assert reasons[1] == "stability not compared: no features.user_features partition before ds"
