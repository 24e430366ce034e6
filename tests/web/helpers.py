"""Driving the dashboard over HTTP the way a browser would: cookies kept, forms posted
with the token the page carried."""

import re
from datetime import datetime, timedelta

import httpx2

from mediagate.accounts.totp import code_at
from mediagate.core.clock import utcnow

TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')
META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
PASSWORD = "correct horse battery"


def form_token(html: str) -> str:
    found = TOKEN.search(html)
    assert found, "the page has no form token"
    return found.group(1)


def page_token(html: str) -> str:
    found = META.search(html)
    assert found and found.group(1), "the page has no session CSRF token"
    return found.group(1)


async def submit_sign_up(
    client: httpx2.AsyncClient, email: str, password: str = PASSWORD
) -> httpx2.Response:
    """The sign-up form posted; the answer (the same whether or not the email is new)."""
    return await _credentials_form(client, "/signup", email, password)


async def sign_up(
    client: httpx2.AsyncClient, email: str, password: str = PASSWORD
) -> httpx2.Response:
    """Sign up, then sign in as the new user does; the sign-in's answer."""
    answer = await submit_sign_up(client, email, password)
    assert answer.status_code == 303, answer.text
    return await sign_in(client, email, password)


async def sign_in(
    client: httpx2.AsyncClient, email: str, password: str = PASSWORD
) -> httpx2.Response:
    return await _credentials_form(client, "/login", email, password)


async def _credentials_form(
    client: httpx2.AsyncClient, path: str, email: str, password: str
) -> httpx2.Response:
    """Open the form (which sets its token cookie) and post it back with that token."""
    page = await client.get(path)
    return await client.post(
        path, data={"email": email, "password": password, "csrf_token": form_token(page.text)}
    )


async def post_form(
    client: httpx2.AsyncClient, page: str, target: str, **fields: str
) -> httpx2.Response:
    """Post a form of `page` to `target` with the session's token, as its own form would."""
    token = page_token((await client.get(page)).text)
    return await client.post(target, data={**fields, "csrf_token": token})


NEW_KEY = re.compile(r'<code id="new-key">(aio_(?:test|live)_\w+)</code>')


async def create_key(client: httpx2.AsyncClient, name: str = "app", mode: str = "test") -> str:
    """A key made on the keys page; its secret, shown that once."""
    answer = await post_form(client, "/keys", "/keys", name=name, mode=mode)
    found = NEW_KEY.search(answer.text)
    assert found, answer.text
    return found.group(1)


SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7]+)</code>')
RECOVERY = re.compile(r"<code data-recovery-code>([a-z0-9-]+)</code>")
STEP = timedelta(seconds=30)


def later(steps: int) -> datetime:
    return utcnow() + steps * STEP


async def enrol(client: httpx2.AsyncClient) -> tuple[str, list[str]]:
    """Turn two-factor on from the profile page; the secret and the recovery codes."""
    setup = await post_form(client, "/profile", "/profile/two-factor/setup")
    assert setup.status_code == 200, setup.text
    found = SECRET.search(setup.text)
    assert found
    secret = found.group(1)
    confirmed = await post_form(
        client, "/profile", "/profile/two-factor/confirm", code=code_at(secret, utcnow())
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = RECOVERY.findall(confirmed.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


ACTION = re.compile(
    r'<form method="post" action="([^"]+)"[^>]*>\s*<input type="hidden" name="csrf_token"'
)
HIDDEN_TOKEN = re.compile(r'name="token" value="([^"]*)"')


async def open_link(client: httpx2.AsyncClient, path: str, **fields: str) -> httpx2.Response:
    """Open a mailed link as its reader does: the page, then its button (the link's form,
    posted with the page's token); the button's answer."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    action, token = ACTION.search(page.text), HIDDEN_TOKEN.search(page.text)
    assert action and token, page.text
    data = {"csrf_token": form_token(page.text), "token": token.group(1), **fields}
    return await client.post(action.group(1), data=data)
