"""Rendering pages: one Jinja2 environment (autoescaped), the viewer and CSRF token in
every template, the security headers on every response."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from mediagate.web.security import page_headers
from mediagate.web.sessions import Viewer

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def human_number(value: object) -> str:
    """1234567 -> "1,234,567" (credits, counts); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


templates.env.filters["number"] = human_number


def page(
    request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, "csrf": viewer.csrf_token if viewer else "", **context},
        status_code=status,
    )
    response.headers.update(page_headers(request))
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def csv_download(body: str, filename: str) -> Response:
    """A CSV export, downloaded as `filename`, never cached."""
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
