"""Credit packages: the operator's TOML file, checked at startup; the Top up page."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from mediagate.app import create_app
from mediagate.billing.packages import EXAMPLE, PackageFileError, load_packages, money
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests.billing.fake_stripe import SECRET_KEY, FakeStripe
from tests.web.helpers import sign_up

GOOD = """
[[packages]]
id = "small"
name = "Small"
credits = 100
price = 199
currency = "EUR"

[[packages]]
id = "old"
name = "Old offer"
credits = 50
price = 99
currency = "eur"
active = false

[[packages]]
id = "yen"
name = "Yen"
credits = 10
price = 500
currency = "jpy"
"""


def test_the_built_in_example_loads() -> None:
    packages = load_packages(None)
    assert list(packages) == ["starter", "builder", "studio"]
    assert all(p.active and p.credits > 0 and p.currency == "usd" for p in packages.values())
    assert load_packages(EXAMPLE) == packages


def test_a_packages_file_is_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "packages.toml"
    path.write_text(GOOD)
    packages = load_packages(path)
    assert list(packages) == ["small", "old", "yen"]
    assert packages["small"].currency == "eur" and packages["small"].price_text == "1.99 EUR"
    assert not packages["old"].active
    assert packages["yen"].price_text == "500 JPY"  # zero-decimal: whole yen
    assert money(123456, "usd") == "1234.56 USD"


ONE = 'id = "a"\nname = "A"\ncredits = 1\nprice = 1\ncurrency = "usd"\n'


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (ONE.replace('"a"', '"Bad Id"'), ".id"),
        (ONE.replace('"A"', '""'), ".name"),
        (ONE.replace("credits = 1", "credits = 0"), ".credits"),
        (ONE.replace("price = 1", "price = -5"), ".price"),
        (ONE.replace("credits = 1", "credits = 1.5"), ".credits"),
        (ONE.replace('"usd"', '"dollars"'), ".currency"),
        (ONE + 'active = "yes"', ".active"),
        (ONE + "colour = 1", "colour"),
        (ONE + "[[packages]]\n" + ONE, "twice"),
        ("[[packages]\n", "packages.toml"),
    ],
)
def test_a_bad_packages_file_is_refused_naming_the_field(
    tmp_path: Path, body: str, named: str
) -> None:
    path = tmp_path / "packages.toml"
    path.write_text(body if body.startswith("[[packages]\n") else "[[packages]]\n" + body)
    with pytest.raises(PackageFileError, match=r"packages\.toml") as raised:
        load_packages(path)
    assert named in str(raised.value)


async def top_up_page(settings: Settings) -> httpx2.Response:
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t.test") as client:
            assert (await client.get("/topup")).headers["location"] == "/login"
            await sign_up(client, "shopper@example.com")
            return await client.get("/topup")


async def test_the_top_up_page_shows_the_active_packages(
    tmp_path: Path, make_settings: Callable[..., Settings], stripe_fake: FakeStripe
) -> None:
    path = tmp_path / "packages.toml"
    path.write_text(GOOD)
    page = await top_up_page(
        make_settings(
            billing_packages_file=path,
            stripe_secret_key=SECRET_KEY,
            stripe_api_base=stripe_fake.base,
        )
    )
    assert page.status_code == 200
    assert 'data-package="small"' in page.text and "1.99 EUR" in page.text
    assert 'data-package="yen"' in page.text and "500 JPY" in page.text
    assert 'data-package="old"' not in page.text  # kept for old orders, not sold
    assert "your <strong>live</strong> balance" in page.text  # sk_test_, operator said nothing
    # The form's redirect goes to Stripe's page (here the fake's origin): allowed by CSP.
    assert f"form-action 'self' {stripe_fake.base}" in page.headers["content-security-policy"]


async def test_without_a_stripe_key_nothing_is_for_sale_but_codes_work(
    make_settings: Callable[..., Settings],
) -> None:
    page = await top_up_page(make_settings())
    assert page.status_code == 200
    assert "data-package=" not in page.text and "not set up on this server" in page.text
    assert 'action="/redeem"' in page.text
