"""The OpenAPI docs page at ``/docs``, from local files where they are installed.

FastAPI's own docs page loads Swagger UI from a CDN, which an offline machine cannot reach.
The ``serve`` extra installs Swagger UI as a package (``swagger-ui-bundle-v2``); its files are
served under ``/docs/assets``. Without it the page falls back to FastAPI's CDN links.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def _swagger_files() -> str | None:
    """The folder of the installed Swagger UI files, or None."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return str(swagger_ui_bundle.swagger_ui_path)


def add_docs(app: FastAPI) -> None:
    """Add ``GET /docs`` (Swagger UI over ``/openapi.json``) to ``app``."""
    files = _swagger_files()
    local = {}
    if files is not None:
        app.mount(ASSETS, StaticFiles(directory=files), name="docs-assets")
        local = {"swagger_js_url": f"{ASSETS}/swagger-ui-bundle.js",
                 "swagger_css_url": f"{ASSETS}/swagger-ui.css",
                 "swagger_favicon_url": f"{ASSETS}/favicon-32x32.png"}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API",
                                   **local)
