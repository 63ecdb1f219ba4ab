"""Bounded retries at the start of a client: what is retried, for how long, and what is raised."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from connectors.kafka.ready import kafka_retriable
from connectors.retry import NotReady, retry_until

pytestmark = pytest.mark.unit


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def not_coordinator() -> KafkaException:
    return KafkaException(KafkaError(KafkaError.NOT_COORDINATOR, "Failed to get committed offsets"))


def test_a_retriable_error_is_retried_until_the_call_succeeds() -> None:
    time = FakeTime()
    answers: list[Exception | str] = [not_coordinator(), not_coordinator(), NotReady("no leader"), "ok"]

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    got = retry_until(
        call, what="offsets", retriable=kafka_retriable, wait_s=30, sleep=time.sleep, clock=time.clock
    )
    assert got == "ok"
    assert time.sleeps == [0.2, 0.4, 0.8]  # growing pauses


def test_a_retriable_error_that_lasts_ends_in_a_timeout_naming_what_and_the_cause() -> None:
    time = FakeTime()

    def call() -> None:
        raise not_coordinator()

    with pytest.raises(TimeoutError, match=r"offsets: still not ready after 10 s: .*NOT_COORDINATOR"):
        retry_until(
            call,
            what="committed offsets",
            retriable=kafka_retriable,
            wait_s=10,
            sleep=time.sleep,
            clock=time.clock,
        )
    assert 10 <= time.now <= 10 + 1e-9  # waited the whole bound and not longer
    assert max(time.sleeps) == 2.0  # the pause is capped


def test_an_error_that_is_not_retriable_is_raised_at_once() -> None:
    time = FakeTime()
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))

    with pytest.raises(KafkaException):
        retry_until(call, what="x", retriable=kafka_retriable, wait_s=60, sleep=time.sleep, clock=time.clock)
    assert calls == 1 and time.sleeps == []


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
    ],
)
def test_the_errors_of_a_starting_broker_are_retriable(code: int) -> None:
    assert kafka_retriable(KafkaException(KafkaError(code)))


def test_other_errors_are_not() -> None:
    assert not kafka_retriable(KafkaException(KafkaError(KafkaError.INVALID_CONFIG)))
    assert not kafka_retriable(ValueError("x"))
