"""Errors as pages for people: a browser that navigates to a missing page, a page it may
not see, or one that failed gets a small page with a way back, not the API's JSON."""

from fastapi import Request
from fastapi.responses import Response

from mediagate.web.render import page
from mediagate.web.security import viewer

TITLES = {
    400: "That request did not work",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    413: "Too large",
    429: "Too many requests",
}


async def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None
) -> Response:
    # Below 500 the database is fine, so the header can show who is signed in; a 500 may be
    # the database itself failing, so that page asks it nothing.
    who = await viewer(request) if status < 500 else None
    title = TITLES.get(status, "Something went wrong" if status >= 500 else "Request failed")
    response = page(
        request,
        "error.html",
        who,
        status,
        status_code=status,
        title=title,
        message=message,
        back="/dashboard" if who else "/",
    )
    response.headers.update(headers or {})
    return response
