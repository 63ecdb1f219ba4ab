"""Screenshots of every page of the web app into docs/ui/, and its load time in a real browser.

Run on demand against the local stack (it makes its own tenant and records, and removes them)::

    python -m tests.integration.webapp_shots --shots docs/ui --loads 15

Each cold load is a new browser context (no cache, no storage but the key) navigating to the
page; the figures are the medians of the navigation timing (``loadEventEnd``), of the time until
the page shows its data, and the bytes transferred.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import httpx

from tests.integration.webapp_support import NEEDLE, World, browser, sign_in, webapp_world

# When each page shows its data: no panel still loading, results listed, rules or keys listed.
READY = {
    "/ui?q=payment": "document.querySelectorAll('#rows tr').length > 0",
    "/ui/dashboards": "document.querySelectorAll('#panels .panel').length > 0"
    " && !document.querySelector('#panels .panel-body p.note:only-child')?.textContent.includes('loading')",
    "/ui/alerts": "document.querySelectorAll('#rules tr').length > 0",
    "/ui/admin": "document.querySelectorAll('#keys tr').length > 0",
}


def _seed(world: World) -> None:
    """A saved dashboard and two rules, so the pages show what a user would have."""
    with httpx.Client(base_url=world.url, headers={"X-API-Key": world.key}, timeout=30) as c:
        c.post(
            "/v1/dashboards",
            json={
                "name": "checkout on call",
                "panels": [
                    {
                        "title": "Checkout by level",
                        "kind": "volume",
                        "group_by": "level",
                        "service": "checkout",
                    },
                    {"title": "Checkout hosts", "kind": "top", "group_by": "host", "service": "checkout"},
                    {"title": "Checkout errors", "kind": "error_rate", "service": "checkout"},
                ],
            },
        ).raise_for_status()
        for rule in (
            {
                "name": "checkout errors",
                "filter": {"services": ["checkout"], "levels": ["ERROR"]},
                "threshold": 5,
            },
            {
                "name": "error surge",
                "type": "anomaly",
                "filter": {"levels": ["ERROR"]},
                "group_by": ["service"],
            },
        ):
            c.post("/v1/alerts/rules", json=rule).raise_for_status()


def screenshots(world: World, b: Any, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    page = b.new_context(viewport={"width": 1360, "height": 860}).new_page()
    page.set_default_timeout(30_000)
    saved = []

    def shot(name: str, full_page: bool = True) -> None:
        page.wait_for_timeout(300)  # the last panel's chart drawn
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        saved.append(path)

    page.goto(f"{world.url}/ui")
    sign_in(page, world.key)
    page.get_by_label("Query").fill(f"payment OR {NEEDLE}")
    page.get_by_label("Query").press("Enter")
    page.get_by_role("button", name=f"card {NEEDLE} declined").click()
    page.locator("#context").wait_for()
    shot("search", full_page=False)
    page.goto(f"{world.url}/ui/dashboards")
    page.wait_for_function(READY["/ui/dashboards"])
    shot("dashboards")
    page.get_by_label("Dashboard", exact=True).select_option(label="checkout on call")
    page.wait_for_function(READY["/ui/dashboards"])
    shot("dashboard-saved")
    page.goto(f"{world.url}/ui/alerts")
    page.wait_for_function(READY["/ui/alerts"])
    page.get_by_role("button", name="Edit error surge").click()
    shot("alerts")
    page.goto(f"{world.url}/ui/admin")
    page.wait_for_function(READY["/ui/admin"])
    shot("admin")
    page.goto(f"{world.url}/ui")
    page.get_by_label("Query").fill("payment AND (")
    page.get_by_label("Query").press("Enter")
    page.get_by_role("alert").wait_for()
    shot("error")
    page.context.close()
    return saved


def cold_loads(world: World, b: Any, path: str, n: int) -> dict[str, float]:
    loads, ready, sizes = [], [], []
    for _ in range(n):
        context = b.new_context()
        context.add_init_script(f"sessionStorage.setItem('strata-key', {json.dumps(world.key)})")
        page = context.new_page()
        page.goto(world.url + path)
        page.wait_for_function(READY[path], timeout=30_000)
        timing = page.evaluate(
            """() => {
                const nav = performance.getEntriesByType("navigation")[0];
                const res = performance.getEntriesByType("resource");
                const app = res.filter((r) => r.name.includes("/ui/static/"));
                return {load: nav.loadEventEnd, ready: performance.now(),
                        bytes: nav.transferSize + app.reduce((a, r) => a + r.transferSize, 0)};
            }"""
        )
        loads.append(timing["load"])
        ready.append(timing["ready"])
        sizes.append(timing["bytes"])
        context.close()
    return {
        "load_ms": statistics.median(loads),
        "ready_ms": statistics.median(ready),
        "app_bytes": statistics.median(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=Path, default=None, help="folder for the screenshots")
    parser.add_argument("--loads", type=int, default=15, help="cold loads per page")
    args = parser.parse_args()
    with webapp_world() as world, browser() as b:
        _seed(world)
        if args.shots:
            for path in screenshots(world, b, args.shots):
                print(f"saved {path}")
        head = f"{'page':<18} {'load ms':>8} {'data ms':>8} {'app bytes':>10}"
        print(f"{head}  (median of {args.loads} cold loads)")
        for path in READY:
            m = cold_loads(world, b, path, args.loads)
            print(f"{path:<18} {m['load_ms']:>8.0f} {m['ready_ms']:>8.0f} {m['app_bytes']:>10.0f}")


if __name__ == "__main__":
    main()
