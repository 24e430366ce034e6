"""/docs: Swagger UI 5 served from our own origin (the files the installed fastapi-offline
package ships; Swagger UI 4, as in swagger-ui-bundle, cannot read OpenAPI 3.1),
never a CDN, and working under the dashboard's CSP (`script-src 'self'`: no inline
script, the initializer is /static/docs-init.js)."""

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from mediagate.core.errors import NotFound
from mediagate.web.security import page_headers

router = APIRouter(include_in_schema=False)
ASSETS = Path(fastapi_offline.__file__).parent / "static"
# Only what the page loads; the bundle's demo index.html and initializer stay unserved.
SERVED = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} — API reference</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def api_docs(request: Request) -> HTMLResponse:
    html = PAGE.format(
        title=escape(request.app.title), openapi_url=escape(request.app.openapi_url or "")
    )
    return HTMLResponse(html, headers=page_headers(request))


@router.get("/docs/assets/{name}")
async def api_docs_asset(name: str) -> FileResponse:
    if name not in SERVED:
        raise NotFound("No such file")
    # The package's files change only with its version: cacheable for a day.
    return FileResponse(
        ASSETS / name,
        media_type=SERVED[name],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
