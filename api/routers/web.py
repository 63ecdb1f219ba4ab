"""The web app: plain HTML, CSS and ES modules from ``api/web``, no build step and nothing fetched
from another site, so it works offline and loads fast cold.

Every page is the same small shell; ``js/app.js`` imports the page's module by its path. The pages
are public; every call they make to the API needs the key the user types in.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parent.parent / "web"
PAGES = ("dashboards", "alerts", "admin")

router = APIRouter(tags=["web app"], include_in_schema=False)
static = StaticFiles(directory=WEB / "static")


def _shell() -> FileResponse:
    # no-cache: the shell names the modules, so a new release must be seen at once; the modules
    # themselves are revalidated by their ETag.
    return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/ui")
async def search_page() -> FileResponse:
    """The search page: query, histogram, results, a record's detail and context, live tail."""
    return _shell()


@router.get("/ui/{page}")
async def page(page: str) -> FileResponse:
    """Dashboards, alert rules and the admin page (retention, keys)."""
    if page not in PAGES:
        return FileResponse(WEB / "index.html", status_code=404, headers={"Cache-Control": "no-cache"})
    return _shell()
