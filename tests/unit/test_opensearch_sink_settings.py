"""The hot sink's settings: a wrong value fails when the settings are read, with what to write."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.opensearch.flink_sink import Bulk, index_row_sql
from infra.settings import Settings

pytestmark = pytest.mark.unit


def test_refresh_interval_takes_opensearch_times_only() -> None:
    assert Settings(opensearch_refresh_interval=" 2s ").opensearch_refresh_interval == "2s"
    assert Settings(opensearch_refresh_interval="-1").opensearch_refresh_interval == "-1"
    with pytest.raises(ValidationError, match="500ms, 1s or 1m"):
        Settings(opensearch_refresh_interval="5 seconds")


def test_bulk_sizes_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        Settings(opensearch_bulk_actions=0)
    with pytest.raises(ValueError, match="EXPONENTIAL, CONSTANT or NONE"):
        Bulk(backoff="LINEAR")


def test_index_rows_name_the_daily_index_like_the_readers() -> None:
    # Quotes in a prefix stay inside the SQL string literal.
    sql = index_row_sql("o'logs")
    assert sql == "`log_id` AS `id`, CONCAT('o''logs-', DATE_FORMAT(`timestamp`, 'yyyy.MM.dd')) AS `index`"
