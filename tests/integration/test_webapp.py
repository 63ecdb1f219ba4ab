"""The web app in a real browser (Debian's chromium, driven by Playwright) against the real API over
records in the real tiers: what a user sees on each page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from schemas.record import Level, Record
from tests.integration.search_support import now_utc
from tests.integration.webapp_support import LINES, NEEDLE, SERVICES, World, browser, sign_in, webapp_world

pytestmark = pytest.mark.integration

expect: Any = None


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with webapp_world() as w:
        yield w


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    global expect
    from playwright.sync_api import expect as playwright_expect

    expect = playwright_expect
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _api(world: World) -> httpx.Client:
    return httpx.Client(base_url=world.url, headers={"X-API-Key": world.key}, timeout=30)


def test_the_dashboard_shows_the_services_ingested(world: World, page: Any) -> None:
    page.goto(f"{world.url}/ui/dashboards")
    sign_in(page, world.key)
    services = page.get_by_role("region", name="Services")
    for name in SERVICES:
        expect(services.get_by_text(name, exact=True)).to_be_visible()
    patterns = page.get_by_role("region", name="Top patterns")
    expect(patterns.get_by_text("payment failed: timeout after <*> ms")).to_be_visible()
    by_level = page.get_by_role("region", name="Volume by level")
    expect(by_level.locator("svg path")).not_to_have_count(0)
    expect(by_level.locator(".legend")).to_contain_text("ERROR")
    by_service = page.get_by_role("region", name="Volume by service")
    for name in SERVICES:  # each its own line, its total over the hour told to a screen reader
        expect(by_service.locator(".legend")).to_contain_text(name)
        expect(by_service.get_by_role("img")).to_have_attribute(
            "aria-label", re.compile(f"{name}: 80 in all")
        )
    rate = page.get_by_role("region", name="Error rate")
    # a quarter of the lines are ERROR, plus the needle
    expect(rate).to_contain_text(re.compile(r"2[56]\.\d% of 240 logs are ERROR or FATAL"))


def test_pattern_panels_show_the_template_text_with_the_id_on_hover(world: World, page: Any) -> None:
    from core.records.mining import pattern_id_of

    text = "payment failed: timeout after <*> ms"
    page.goto(f"{world.url}/ui/dashboards")
    sign_in(page, world.key)
    top = page.get_by_role("region", name="Top patterns").get_by_text(text, exact=True)
    expect(top).to_have_attribute("title", f"{text}\npattern id {pattern_id_of(text)}")

    # Metrics name a pattern by its id: the panel shows the text people read, the id on hover.
    page.get_by_label("Panel title").fill("Volume by pattern")
    page.get_by_label("Shows").select_option("volume")
    page.get_by_label("Group by").select_option("pattern")
    page.get_by_role("button", name="Add panel").click()
    legend = page.get_by_role("region", name="Volume by pattern").locator(".legend")
    for _, _, pattern in LINES:
        entry = legend.get_by_text(pattern, exact=True)
        expect(entry).to_be_visible()
        expect(entry).to_have_attribute("title", f"pattern id {pattern_id_of(pattern)}")
    # the needle's line had no pattern
    expect(legend.get_by_text("(no pattern)", exact=True)).to_be_visible()
    expect(legend).not_to_contain_text(pattern_id_of(text))


def test_the_time_picker_narrows_every_panel_and_auto_refresh_redraws(world: World, page: Any) -> None:
    page.goto(f"{world.url}/ui/dashboards")
    sign_in(page, world.key)
    services = page.get_by_role("region", name="Services")
    expect(services.locator("li", has_text="checkout")).to_contain_text("80")
    page.get_by_label("Time range").select_option(label="last 15 minutes")
    cutoff = now_utc() - timedelta(minutes=15)
    recent = sum(1 for r in world.records if r.service == "checkout" and r.timestamp >= cutoff)
    assert 0 < recent < 80
    expect(services.locator("li", has_text="checkout")).to_contain_text(str(recent))
    rate = page.get_by_role("region", name="Error rate")
    expect(rate).not_to_contain_text("of 240 logs")
    expect(rate).to_contain_text(re.compile(r"of \d+ logs"))
    # the metrics count whole minutes, and the page's 15 minutes end a moment after the test's
    logs = int(re.search(r"of (\d+) logs", rate.inner_text()).group(1))  # type: ignore[union-attr]
    surely_in = sum(1 for r in world.records if r.timestamp >= cutoff + timedelta(seconds=30))
    maybe_in = sum(1 for r in world.records if r.timestamp >= cutoff - timedelta(seconds=90))
    assert surely_in <= logs <= maybe_in

    updated = page.locator("#updated").inner_text()
    page.get_by_label("Auto-refresh").select_option(label="every 10 s")
    expect(page.locator("#updated")).not_to_have_text(updated, timeout=15_000)


def test_a_saved_panel_survives_a_reload_and_a_new_session(world: World, page: Any, chromium: Any) -> None:
    page.goto(f"{world.url}/ui/dashboards")
    sign_in(page, world.key)
    page.get_by_label("Panel title").fill("Checkout by level")
    page.get_by_label("Shows").select_option("top")
    page.get_by_label("Group by").select_option("level")
    page.get_by_label("Only service").fill("checkout")
    page.get_by_role("button", name="Add panel").click()
    page.get_by_label("Dashboard name").fill("checkout on call")
    page.get_by_role("button", name="Save dashboard").click()
    expect(page.get_by_label("Dashboard", exact=True)).to_have_value(re.compile("^d"))

    page.reload()
    panel = page.get_by_role("region", name="Checkout by level")
    expect(panel.get_by_text("ERROR", exact=True)).to_be_visible()
    picked = page.get_by_label("Dashboard", exact=True).locator("option:checked")
    expect(picked).to_have_text("checkout on call")

    # Stored for the tenant, not in this browser: a new session that signs in picks it.
    other = chromium.new_context()
    try:
        fresh = other.new_page()
        fresh.goto(f"{world.url}/ui/dashboards")
        sign_in(fresh, world.key)
        fresh.get_by_label("Dashboard", exact=True).select_option(label="checkout on call")
        expect(fresh.get_by_role("region", name="Checkout by level")).to_contain_text("WARN")
    finally:
        other.close()
    with _api(world) as c:
        (saved,) = [d for d in c.get("/v1/dashboards").json() if d["name"] == "checkout on call"]
        assert saved["panels"][-1]["service"] == "checkout"
        assert c.delete(f"/v1/dashboards/{saved['id']}").status_code == 204


def test_a_search_finds_a_record_and_opens_its_detail_and_context(world: World, page: Any) -> None:
    page.goto(f"{world.url}/ui")
    sign_in(page, world.key)
    page.get_by_label("Query").fill(NEEDLE)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#status")).to_contain_text("1 logs")
    page.get_by_role("button", name=f"card {NEEDLE} declined").click()
    detail = page.get_by_role("region", name="Log detail")
    needle = next(r for r in world.records if NEEDLE in r.message)
    expect(detail.locator("dl")).to_contain_text(needle.log_id)
    expect(detail.locator("dl")).to_contain_text("attributes.req_id")
    context = detail.locator("#context tr")
    # the lines checkout logged on web-1 just before and after it, the needle highlighted between
    neighbours = sorted(
        (r for r in world.records if r.service == "checkout" and r.host == "web-1"), key=lambda r: r.timestamp
    )
    at = neighbours.index(needle)
    expect(context).to_have_count(len(neighbours[max(0, at - 10) : at + 11]))
    expect(detail.locator("#context tr.current")).to_contain_text(NEEDLE)
    expect(context.first).to_contain_text(neighbours[max(0, at - 10)].message)


def test_live_tail_shows_new_records_that_match(world: World, page: Any) -> None:
    from confluent_kafka import Producer

    page.goto(f"{world.url}/ui")
    sign_in(page, world.key)
    page.get_by_label("Service").fill("checkout")
    page.get_by_role("button", name="Live tail").click()
    expect(page.locator("#status")).to_have_text("following new logs…")
    page.wait_for_timeout(1000)  # the API's consumer assigns itself the partitions
    now = datetime.now(UTC)
    fresh = [
        Record(
            f"tail-{i}",
            world.tenant,
            now,
            now,
            Level.ERROR,
            service,
            "web-9",
            None,
            None,
            message,
            None,
            None,
        )
        for i, (service, message) in enumerate(
            [
                ("checkout", "tail: card declined"),
                ("auth", "tail: token expired"),
                ("checkout", "tail: retried"),
            ]
        )
    ]
    producer = Producer({"bootstrap.servers": world.settings.kafka_servers, "linger.ms": 0})
    for r in fresh:
        producer.produce(world.settings.logs_topic, key=f"{r.tenant}/{r.service}".encode(), value=r.to_json())
    producer.flush(10)
    rows = page.locator("#rows tr")
    expect(rows).to_have_count(2)  # newest first; the auth line is not for this filter
    expect(rows.nth(0)).to_contain_text("tail: retried")
    expect(rows.nth(1)).to_contain_text("tail: card declined")
    page.get_by_role("button", name="Stop tail").click()
    expect(page.get_by_role("button", name="Live tail")).to_be_visible()


def test_search_by_keyboard_only(world: World, page: Any) -> None:
    page.goto(f"{world.url}/ui")
    key_field = page.get_by_label("API key")
    key_field.focus()
    page.keyboard.type(world.key)
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Sign out").wait_for()
    page.get_by_label("Query").focus()
    page.keyboard.type("payment AND timeout")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "service", "Tab goes from the query to the service"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused field shows its focus"
    page.keyboard.type("checkout")
    page.keyboard.press("Enter")
    first = page.locator("#rows tr").first
    expect(first).to_contain_text("payment failed: timeout")
    expect(page.locator("#rows tr")).to_have_count(
        sum(1 for r in world.records if r.service == "checkout" and r.message.startswith("payment failed"))
    )
    for _ in range(30):  # Tab on to the first result, and open it with Enter
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#rows') !== null"):
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("region", name="Log detail")).to_contain_text("payment failed: timeout")


def test_a_rule_is_created_disabled_and_listed(world: World, page: Any) -> None:
    page.goto(f"{world.url}/ui/alerts")
    sign_in(page, world.key)
    page.get_by_label("Rule name").fill("checkout errors")
    page.get_by_label("Services").fill("checkout")
    page.get_by_label("Levels").fill("error")
    page.get_by_label("Threshold").fill("5")
    page.get_by_role("button", name="Create rule").click()
    row = page.locator("#rules tr", has_text="checkout errors")
    expect(row).to_contain_text("count > 5 in 300s")
    expect(row).to_contain_text("enabled")

    page.get_by_label("Rule name").fill("error surge")
    page.get_by_label("Type").select_option("anomaly")
    page.get_by_label("Sensitivity").fill("4")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rules tr", has_text="error surge")).to_contain_text("up anomaly, sensitivity 4")

    page.get_by_role("button", name="Edit error surge").click()
    expect(page.get_by_label("Threshold")).to_be_hidden()  # an anomaly rule has no fixed threshold
    page.get_by_role("button", name="Edit checkout errors").click()
    expect(page.get_by_label("Rule name")).to_have_value("checkout errors")
    expect(page.get_by_label("Rule name")).to_be_focused()
    page.get_by_label("Threshold").fill("9")
    page.get_by_role("button", name="Save rule").click()
    expect(row).to_contain_text("count > 9 in 300s")

    page.get_by_role("button", name="Disable checkout errors").click()
    expect(row).to_contain_text("disabled")
    page.get_by_role("button", name="History of checkout errors").click()
    expect(page.locator("#history")).to_contain_text("has not changed state yet")
    with _api(world) as c:
        rules = {r["name"]: r for r in c.get("/v1/alerts/rules").json()}
    assert rules["checkout errors"]["enabled"] is False
    assert rules["checkout errors"]["filter"]["levels"] == ["ERROR"]
    assert rules["error surge"]["type"] == "anomaly"


def test_the_admin_page_sets_a_retention_and_creates_a_key(world: World, page: Any) -> None:
    with _api(world) as c:  # set elsewhere: saving the hot tier's days must keep it
        assert c.put("/v1/retention", json={"metrics_1m_days": 30}).status_code == 200
    page.goto(f"{world.url}/ui/admin")
    sign_in(page, world.key)
    expect(page.get_by_label("Metrics per minute, days")).to_have_value("30")
    page.get_by_label("Hot days (OpenSearch)").fill("3")
    page.get_by_role("button", name="Save retention").click()
    expect(page.locator("#retention-now")).to_contain_text("hot 3 days")
    expect(page.locator("#retention-now")).to_contain_text("metrics per minute 30 days")
    page.reload()
    expect(page.get_by_label("Hot days (OpenSearch)")).to_have_value("3")
    with _api(world) as c:
        override = c.get("/v1/retention").json()["override"]
    assert override["hot_days"] == 3 and override["metrics_1m_days"] == 30

    page.get_by_label("Key name").fill("grafana")
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-key").inner_text()
    expect(page.locator("#keys")).to_contain_text("grafana")
    search = httpx.get(f"{world.url}/v1/logs/search", headers={"X-API-Key": new_key}, params={"q": NEEDLE})
    assert search.status_code == 200 and search.json()["total"] == 1


def test_api_errors_are_shown_to_the_user(world: World, page: Any) -> None:
    page.goto(f"{world.url}/ui")
    sign_in(page, "sk_not-a-real-key")
    page.get_by_label("Query").fill("payment")
    page.get_by_label("Query").press("Enter")
    expect(page.get_by_role("alert")).to_have_text("the API key is not valid")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, world.key)
    page.get_by_label("Query").fill("payment AND (")
    page.get_by_label("Query").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("at character")

    page.goto(f"{world.url}/ui/alerts")
    page.get_by_label("Rule name").fill("bad window")
    page.get_by_label("Window").fill("soon")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_role("alert")).to_contain_text("window")
    expect(page.get_by_role("alert")).to_contain_text("not a duration")


def test_sign_out_forgets_the_key(world: World, page: Any) -> None:
    page.goto(f"{world.url}/ui")
    page.get_by_label("API key").fill(world.key)
    page.get_by_label("remember on this device").check()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    page.get_by_role("button", name="Sign in").click()
    page.reload()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_hidden()
    page.get_by_role("button", name="Sign out").click()
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_label("API key")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    page.get_by_label("Query").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("sign in with an API key first")


def test_an_unknown_page_is_not_found(world: World) -> None:
    r = httpx.get(f"{world.url}/ui/nothing-here")
    assert r.status_code == 404


def test_a_metric_rule_made_on_the_page_is_charted_by_a_metric_panel(world: World, page: Any) -> None:
    from opensearchpy import OpenSearch

    from connectors.opensearch.field_metrics import (
        ensure_field_template,
        field_metrics_pattern,
        fields_prefix,
    )
    from core.fieldmetrics import Measurement, RuleAccumulator
    from core.metrics import DictStore

    page.goto(f"{world.url}/ui/dashboards")
    sign_in(page, world.key)
    page.get_by_label("Rule name").fill("checkout latency")
    page.get_by_label("Service", exact=True).fill("checkout")
    page.get_by_label("Field", exact=True).fill("latency")
    page.get_by_label("Bare numbers in").select_option("ms")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#updated")).to_contain_text('rule "checkout latency" created')
    with _api(world) as c:
        (rule,) = [r for r in c.get("/v1/metrics/rules").json() if r["name"] == "checkout latency"]
    assert rule["filter"]["services"] == ["checkout"] and rule["unit"] == "ms"

    # What the field metrics job would store for it: values of the last half hour.
    client = OpenSearch(world.settings.opensearch_endpoint, timeout=60)
    prefix = world.settings.opensearch_index_prefix
    ensure_field_template(client, prefix)
    acc = RuleAccumulator(DictStore(), DictStore())
    now = int(now_utc().timestamp())
    for i in range(60):
        acc.add(Measurement(rule["id"], "checkout", "INFO", now - 1800 + i * 30, 100.0 + i), 0, i, 0)
    body: list[dict[str, Any]] = []
    for doc_id, suffix, doc in acc.flush(world.tenant, rule["id"]):
        body += [{"index": {"_index": f"{prefix}.fields.metrics-{suffix}", "_id": doc_id}}, doc]
    client.bulk(body=body, refresh="true")
    try:
        page.get_by_label("Panel title").fill("Checkout p99")
        page.get_by_label("Shows").select_option("metric")
        page.get_by_label("Group by").select_option("service")
        page.get_by_label("Metric rule", exact=True).select_option(label="checkout latency (latency)")
        page.get_by_label("Stat", exact=True).select_option("max")
        page.get_by_role("button", name="Add panel").click()
        panel = page.get_by_role("region", name="Checkout p99")
        expect(panel).to_contain_text("max of latency (ms)")
        expect(panel.locator(".legend")).to_contain_text("checkout")
        expect(panel.locator("svg path")).not_to_have_count(0)
    finally:
        client.indices.delete(index=field_metrics_pattern(prefix), ignore=[404])
        client.indices.delete_index_template(name=fields_prefix(prefix), ignore=[404])
        with _api(world) as c:
            assert c.delete(f"/v1/metrics/rules/{rule['id']}").status_code == 204
