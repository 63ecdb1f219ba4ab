"""Accuracy on real logs (Loghub 2k samples): header fields and Drain grouping, one default config.

The samples live outside the repository (``../shared/datasets/loghub-2k`` or
``$STRATA_DATASETS/loghub-2k``); without them these tests skip.
"""

from __future__ import annotations

import pytest

from tests.loghub import SYSTEMS, datasets_dir, evaluate, evaluate_all, markdown_table

pytestmark = pytest.mark.unit

if not datasets_dir().is_dir():
    pytest.skip(f"Loghub samples not found at {datasets_dir()}", allow_module_level=True)


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_header_fields_agree_with_ground_truth(system: str) -> None:
    if not (datasets_dir() / system).is_dir():
        pytest.skip(f"{system} sample missing")
    score = evaluate(system)
    assert score.rejected == 0
    assert score.time_ok >= 0.99
    if score.level_ok is not None:
        assert score.level_ok >= 0.99
    if score.component_ok is not None:
        assert score.component_ok >= 0.99


def test_mean_grouping_accuracy_with_the_default_config() -> None:
    scores = evaluate_all()
    print("\n" + markdown_table(scores))
    mean = sum(s.grouping for s in scores) / len(scores)
    assert mean >= 0.85, markdown_table(scores)


def test_accuracy_without_the_per_system_patterns_beside_with_them() -> None:
    """The systems as if nobody had described them: no ``--format``, only auto-detection and
    header reading. Reported beside the figures with the built-in per-system patterns."""
    with_patterns = evaluate_all()
    without = evaluate_all(patterns=False)
    mean_on = sum(s.grouping for s in with_patterns) / len(with_patterns)
    mean_off = sum(s.grouping for s in without) / len(without)
    time_off = sum(s.time_ok * s.lines for s in without) / sum(s.lines for s in without)
    print(f"\nwith per-system patterns: grouping {mean_on:.3f}")
    print(f"without: grouping {mean_off:.3f}, right timestamp {time_off:.3f}\n" + markdown_table(without))
    assert all(s.rejected == 0 for s in without)
    assert mean_off >= 0.70 and time_off >= 0.95, markdown_table(without)
