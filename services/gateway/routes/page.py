"""The live web page: ``/`` and its static files under ``/ui`` (plain files, no build step).

The page holds no data of its own: everything it shows comes from the API, with the caller's
key, so the page and its files are served without one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

__all__ = ["PAGE_ASSETS_PATH", "load_page", "page_assets", "router"]

PAGE_ASSETS_PATH = "/ui"

PAGE_HEADERS = {
    # Only our own script and styles run; the page talks to this gateway only.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_ASSET_HEADERS = ((b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"))

router = APIRouter(include_in_schema=False)


def _web_directory() -> Path:
    return Path(str(resources.files("services.gateway").joinpath("web")))


def load_page() -> str:
    """The page's HTML, read once at start-up."""
    return (_web_directory() / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def live_page(request: Request) -> HTMLResponse:
    html: str = request.app.state.page_html
    return HTMLResponse(html, headers=PAGE_HEADERS)


class _NoCacheStaticFiles(StaticFiles):
    """Static files revalidated on every load, so an upgraded gateway serves its new page."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *_ASSET_HEADERS]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def page_assets() -> StaticFiles:
    return _NoCacheStaticFiles(directory=_web_directory())
