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
