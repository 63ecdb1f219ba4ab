"""A single-node Kafka broker of a test's own: the stack's broker definition and jars, on other
ports and in a folder of its own, so a test can start, kill and restart it without touching the
shared broker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from infra.stack.services.kafka import Kafka
from tests.integration.collector_support import free_port, require_stack


class ThrowawayKafka(Kafka):
    """The stack's broker definition, on other ports and in a folder of its own."""

    def __init__(self, home: Path, shared_lib: Path, *, tls: bool = False) -> None:
        base = require_stack()
        super().__init__(
            base.model_copy(
                update={
                    "home": home,
                    "kafka_port": free_port(),
                    "kafka_controller_port": free_port(),
                    "kafka_heap": "256m",
                    "kafka_bootstrap": "",
                    # With tls, a SASL_SSL listener too, as `strata stack up --tls` makes it.
                    "stack_tls": tls,
                    "kafka_tls_port": free_port(),
                }
            )
        )
        self._shared_lib = shared_lib
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def lib_dir(self) -> Path:
        return self._shared_lib

    def start(self) -> None:
        launch = self.prepare()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(launch.cmd, stdout=log, stderr=subprocess.STDOUT)
        admin = AdminClient({"bootstrap.servers": self.endpoint})
        deadline = time.monotonic() + 90
        while True:
            try:
                admin.list_topics(timeout=2)
                return
            except KafkaException:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"the throwaway broker did not start: {self.log_file.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


def throwaway_kafka(home: Path, *, tls: bool = False) -> ThrowawayKafka:
    """An unstarted broker in ``home`` using the stack's Kafka jars."""
    settings = require_stack()
    shared_lib = settings.cache_dir / f"kafka-{settings.kafka_version}"
    if not shared_lib.exists():
        pytest.fail(f"the stack's Kafka jars are missing in {shared_lib}; run `strata stack up`")
    return ThrowawayKafka(home, shared_lib, tls=tls)
