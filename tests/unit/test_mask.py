"""PII masking: generated personal data never survives, and ordinary log values are left alone."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

import orjson
import pytest
from faker import Faker

from core.records.config import PipelineConfig
from core.records.mask import Masker, MaskRules, luhn_ok
from core.records.pipeline import RecordPipeline
from schemas import RawEnvelope, Record

pytestmark = pytest.mark.unit

ARRIVAL = datetime(2025, 2, 15, 12, 0, tzinfo=UTC)
CARD_TYPES = ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "diners", "jcb15", "jcb16"]


def _pii_samples(seed: int = 1234, n: int = 60) -> list[tuple[str, str]]:
    """(kind, value) pairs from faker, seeded so a failure reproduces."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for i in range(n):
        out.append(("EMAIL", fake.email()))
        out.append(("EMAIL", fake.company_email()))
        out.append(("PHONE", fake.phone_number()))
        out.append(("CARD", fake.credit_card_number(card_type=CARD_TYPES[i % len(CARD_TYPES)])))
        out.append(("SSN", fake.ssn()))
        out.append(("IP", fake.ipv4()))
        out.append(("IP", fake.ipv4_private()))
        out.append(("IP", fake.ipv6()))
        out.append(("AWS_KEY", "AKIA" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=16))))
        out.append(("TOKEN", fake.sha256()[:40]))
        out.append(("SECRET", fake.password(length=14)))
    return out


def _line(kind: str, value: str, style: int) -> str:
    if kind == "TOKEN":
        return f"calling upstream with Authorization: Bearer {value} ok"
    if kind == "SECRET":
        text = ["login password={v} for user", 'cfg {{"secret": "{v}"}} loaded', "retry with token: {v}"][
            style % 3
        ]
        return text.format(v=value)
    if kind == "PHONE":
        # Bare ten-digit numbers are only masked next to a word saying they are a phone number.
        return f"customer phone: {value} updated"
    templates = ["user {v} did something", "value={v}", "[{v}] request failed", "contact {v}, retry later"]
    return templates[style % len(templates)].format(v=value)


def _leaks(record: Record, value: str) -> bool:
    text = record.to_json().decode()
    if value in text:
        return True
    digits = "".join(ch for ch in value if ch.isdigit())
    return len(digits) >= 9 and digits in "".join(ch for ch in text if ch.isdigit())


def test_faker_pii_in_messages_is_fully_masked() -> None:
    pipeline = RecordPipeline()
    leaks = []
    for i, (kind, value) in enumerate(_pii_samples()):
        for style in range(3):
            line = f"2025-02-15 12:00:00.000 INFO [svc] {_line(kind, value, style + i)}"
            record = pipeline.process_line(line, tenant="t", received_at=ARRIVAL)
            assert isinstance(record, Record), record
            if _leaks(record, value):
                leaks.append((kind, value, record.message))
            assert record.masked, (kind, value, record.message)
    assert leaks == []


def test_faker_pii_in_json_attributes_is_fully_masked() -> None:
    pipeline = RecordPipeline()
    leaks = []
    for kind, value in _pii_samples(seed=99):
        field = {"PHONE": "phone", "SECRET": "password", "TOKEN": "authorization"}.get(kind, "detail")
        line = orjson.dumps({"msg": "profile updated", "user": {field: value}, "context": {"note": value}})
        record = pipeline.process_line(line, tenant="t", received_at=ARRIVAL)
        assert isinstance(record, Record)
        if kind in ("PHONE", "TOKEN", "SECRET"):
            # Without a label, a bare number or random string is indistinguishable from an id.
            record.attributes.pop("note")
        if _leaks(record, value):
            leaks.append((kind, value, record.attributes))
    assert leaks == []


def test_counts_and_markers() -> None:
    counts: dict[str, int] = {}
    out = Masker(MaskRules()).mask(
        "mail a.b@example.com or c@d.io, card 4111-1111-1111-1111, ssn 078-05-1120, "
        "ip 10.1.2.3 and 2001:db8::1, key AKIAIOSFODNN7EXAMPLE, password=hunter2, "
        "Authorization: Bearer abc.def, phone +44 20 7946 0958",
        counts,
    )
    assert out == (
        "mail [EMAIL] or [EMAIL], card [CARD], ssn [SSN], ip [IP] and [IP], key [AWS_KEY], "
        "password=[REDACTED], Authorization: [REDACTED], phone [PHONE]"
    )
    assert counts == {"EMAIL": 2, "CARD": 1, "SSN": 1, "IP": 2, "AWS_KEY": 1, "SECRET": 2, "PHONE": 1}


@pytest.mark.parametrize(
    "text",
    [
        "started at 2025-02-15 12:00:00.123 in 1500ms",
        "2025-02-15T12:00:00Z took 12:00:00",
        "running version 1.2.3.4 of v10.0.0.1",
        "block blk_-6952295868487656571 replicated",
        "request 550e8400-e29b-41d4-a716-446655440000 done",
        "thread 4328636416 pid 35708 port 8080",
        "epoch 1739620800 ms 1739620800123",
        "card-like but not Luhn 4111111111111112",
        "ratio 0.123456789 offset 123-45",
        "mac 00:1a:2b:3c:4d:5e and time 10:22:33",
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "invalid ssn 000-12-3456 and 666-12-3456",
    ],
)
def test_no_false_positives(text: str) -> None:
    counts: dict[str, int] = {}
    assert Masker(MaskRules()).mask(text, counts) == text
    assert counts == {}


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")


def test_rules_per_tenant() -> None:
    config = PipelineConfig(
        masking={
            "default": MaskRules(),
            "tenants": {
                "acme": MaskRules(
                    ipv4=False, custom=[{"name": "ORDER", "regex": r"ORD-\d{6}", "marker": "[ORDER]"}]
                )
            },
        }
    )
    pipeline = RecordPipeline(config)
    line = "2025-02-15 12:00:00 INFO order ORD-123456 from 10.0.0.1"
    acme = pipeline.process_line(line, tenant="acme", received_at=ARRIVAL)
    other = pipeline.process_line(line, tenant="other", received_at=ARRIVAL)
    assert isinstance(acme, Record) and isinstance(other, Record)
    assert acme.message == "order [ORDER] from 10.0.0.1" and acme.masked == {"ORDER": 1}
    assert other.message == "order ORD-123456 from [IP]" and other.masked == {"IP": 1}


def test_masking_can_be_disabled() -> None:
    pipeline = RecordPipeline(PipelineConfig(masking={"enabled": False}))
    record = pipeline.process_line("mail bob@example.com", tenant="t", received_at=ARRIVAL)
    assert isinstance(record, Record)
    assert record.message == "mail bob@example.com" and record.masked == {}


# -- secrets and identifiers beyond the basic kinds ---------------------------------------------

PEM_BODY = (
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
)
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SLACK_TOKEN = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE_KEY = "sk_live_51HqLyjWDarjtT1zdp7dcXjYqUo"
STRATA_KEY = "strata_0123456789abcdef_" + "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg"


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        (
            "connecting to postgres://app:hunter2@db.internal:5432/orders",
            "connecting to postgres://app:[REDACTED]@db.internal:5432/orders",
            "SECRET",
        ),
        (
            "broker amqp://guest:s3cr%40t@rabbit/vhost up",
            "broker amqp://guest:[REDACTED]@rabbit/vhost up",
            "SECRET",
        ),
        ("redis url redis://:p4ss@cache:6379", "redis url redis://:[REDACTED]@cache:6379", "SECRET"),
        (
            f"loaded -----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY----- ok",
            "loaded [PRIVATE_KEY] ok",
            "PRIVATE_KEY",
        ),
        (f"key: -----BEGIN PRIVATE KEY-----\n{PEM_BODY}", "key: [PRIVATE_KEY]", "PRIVATE_KEY"),  # cut short
        (
            f"-----BEGIN OPENSSH PRIVATE KEY-----{PEM_BODY}-----END OPENSSH PRIVATE KEY-----",
            "[PRIVATE_KEY]",
            "PRIVATE_KEY",
        ),
        (f"git clone with {GITHUB_TOKEN} failed", "git clone with [TOKEN] failed", "TOKEN"),
        (f"slack token={SLACK_TOKEN}".replace("token=", "using "), "slack using [TOKEN]", "TOKEN"),
        (f"stripe charge with {STRIPE_KEY}", "stripe charge with [TOKEN]", "TOKEN"),
        (f"client key {STRATA_KEY} refused", "client key strata_0123456789abcdef_[TOKEN] refused", "TOKEN"),
        ("refund to DE89 3704 0044 0532 0130 00 queued", "refund to [IBAN] queued", "IBAN"),
        ("refund to GB82WEST12345698765432, done", "refund to [IBAN], done", "IBAN"),
        ("iban FR1420041010050500013M02606 OK", "iban [IBAN] OK", "IBAN"),
        ("customer ssn 078051120 on file", "customer ssn [SSN] on file", "SSN"),
        ("Social Security number: 078051120", "Social Security number: [SSN]", "SSN"),
        ("paid with card4111111111111111 today", "paid with card[CARD] today", "CARD"),
        ("amount 4111111111111111USD", "amount [CARD]USD", "CARD"),
    ],
)
def test_secrets_and_identifiers_are_masked(text: str, expected: str, kind: str) -> None:
    counts: dict[str, int] = {}
    assert Masker(MaskRules()).mask(text, counts) == expected
    assert counts == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        "see https://example.com/a@b for details",  # no password in the URL
        "-----BEGIN CERTIFICATE----- MIIB -----END CERTIFICATE-----",  # a certificate is public
        "-----BEGIN PUBLIC KEY----- MIIB -----END PUBLIC KEY-----",
        "order DE12345678901234567 shipped",  # IBAN-shaped, fails mod 97
        "job 078051120 finished in 3s",  # nine digits without a word saying SSN
        "host web4111111111111112 up",  # glued, but not Luhn
        "ghp_short and sk_live_ alone",
        "block blk_3587508140051953248 and blk_4111111111111111",  # HDFS block ids
    ],
)
def test_lookalikes_stay(text: str) -> None:
    counts: dict[str, int] = {}
    assert Masker(MaskRules()).mask(text, counts) == text
    assert counts == {}


def test_faker_ibans_are_masked() -> None:
    fake = Faker("de_DE")
    fake.seed_instance(7)
    masker = Masker(MaskRules())
    for _ in range(200):
        iban = fake.iban()
        counts: dict[str, int] = {}
        assert masker.mask(f"payout to {iban} sent", counts) == "payout to [IBAN] sent", iban
    assert Masker(MaskRules(iban=False)).mask("payout to DE89370400440532013000", {}).endswith("3000")


def test_host_and_attribute_keys_are_masked() -> None:
    entry = {
        "message": "seen",
        "host": "10.20.30.40",
        "users": {"bob@example.com": "admin", "alice@example.org": "viewer"},
        "by_ip": {"10.0.0.7": "blocked"},
        "exampleSDID@32473": {"eventID": "1011"},
    }
    r = RecordPipeline().process(RawEnvelope(tenant="t", received_at=ARRIVAL, entry=entry))
    assert isinstance(r, Record)
    assert r.host == "[IP]"
    assert r.attributes == {
        # An e-mail's local part may hold dots, so the whole dotted name is taken for one.
        "[EMAIL]": "admin",
        "[EMAIL]~2": "viewer",
        "by_ip.[IP]": "blocked",
        "exampleSDID@32473.eventID": "1011",
    }
    assert r.masked == {"IP": 2, "EMAIL": 2}
    assert "bob" not in r.to_json().decode()


def test_ssn_labelled_attribute_masks_bare_digits() -> None:
    r = RecordPipeline().process(
        RawEnvelope(
            tenant="t", received_at=ARRIVAL, entry={"message": "m", "ssn": "078051120", "n": "078051120"}
        )
    )
    assert isinstance(r, Record)
    assert r.attributes == {"ssn": "[SSN]", "n": "078051120"}


MIB = 1024 * 1024
HOSTILE_MASK_LINES = {
    "schemes": "a://" * (MIB // 4),
    "url-no-at": "postgres://u:" + "p" * (MIB - 20),
    "url-colons": "x://:" * (MIB // 5) + "@",
    "pem-begins": "-----BEGIN PRIVATE KEY-----" * (MIB // 27),
    "pem-near-begins": "-----BEGIN " * (MIB // 11),
    "token-prefixes": "ghp_" * (MIB // 4),
    "slack-dashes": "xoxb-" + "-" * (MIB - 5),
    "strata-ids": "strata_0123456789abcdef_" * (MIB // 24),
    "iban-run": "DE89" + "A" * (MIB - 4),
    "iban-groups": "DE89 " + "ABCD " * (MIB // 5),
    "digits": "1" * MIB,
    "glued-cards": "a4111111111111111" * (MIB // 17),
    "ssn-context": "ssn " * (MIB // 4) + "078051120",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MASK_LINES))
def test_masking_a_hostile_mebibyte_line_is_one_scan(name: str) -> None:
    # The bound is loose (machines are shared): a backtracking pattern takes minutes here.
    import time

    masker = Masker(MaskRules())
    start = time.process_time()
    masker.mask(HOSTILE_MASK_LINES[name], {})
    assert time.process_time() - start < 2.0
