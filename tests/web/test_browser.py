"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real
`mediagate serve` process: the landing page and an HTML 404, sign up and the first test
key, a key copied, the console's key picker, a reference uploaded from the console and a
sandbox generation, the task's own page, the key revoked and the console refused, the
charge in the ledger, an operator's grant; the money side: Top up through the fake
Stripe's hosted pay page (tests/billing/fake_stripe.py, its signed webhook delivered to the
real server), the order and receipt, a code redeemed on the dashboard, the usage charts.
Every page is screenshotted under test-artifacts/browser/, and no page loads anything from
another origin (the Stripe Checkout page is the one place the browser is sent)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.billing.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, serve_fake_stripe
from tests.e2e.procs import cli, environment, free_port, process, wait_for_http
from tests.services import unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("MEDIAGATE_TEST_ARTIFACTS", "test-artifacts")) / "browser"
PASSWORD = "correct horse battery"
FOX = Path(__file__).parents[2] / "mediagate" / "web" / "static" / "examples" / "fox.png"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("browser")
    with serve_fake_stripe() as stripe:
        env = environment(
            folder / "data",
            sandbox_latency_s=0.3,
            runner_poll_interval_s=0.1,
            stripe_secret_key=SECRET_KEY,
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=stripe.base,
        )
        cli(env, "migrate")
        cli(
            {**env, "OPERATOR_PASSWORD": PASSWORD},
            "admin",
            "create",
            "--email",
            "op@example.com",
            "--password-env",
            "OPERATOR_PASSWORD",
        )
        port = free_port()
        log = folder / "serve.log"
        with process(env, "serve", "--port", str(port), log=log) as server:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, server, log)
            # The endpoint an operator registers at Stripe: the fake's pay page delivers there.
            stripe.webhook_url = f"{base}/api/v1/billing/stripe/webhook"
            yield {"base": base, "env": env, "stripe": stripe}


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def hint(secret: str) -> str:
    """A key as the picker lists it (keys/service.py `hint`)."""
    return f"{secret[:13]}…{secret[-4:]}"


class Tab:
    """A browser context with its network log; every request must stay on our origin."""

    def __init__(self, browser: Any, base: str, **options: Any) -> None:
        self.base = base
        self.context = browser.new_context(base_url=base, **options)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: str) -> Any:
        self.page.goto(path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def shot(self, name: str) -> None:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0, f"screenshot {name} is empty"

    def foreign(self) -> list[str]:
        return [u for u in self.requests if not (u.startswith(self.base) or u.startswith("data:"))]


def test_dashboard_in_a_real_browser(site: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    base = site["base"]
    user = Tab(browser, base)
    # A visitor's home page: the offer, the models, the way in.
    page = user.open("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("One API for generative media models")
    expect(page.locator('li[data-model="kling-image-o1"] a')).to_have_attribute(
        "href", "/models/kling-image-o1"
    )
    user.shot("00-landing")
    # A missing page is a page with a way back, not JSON.
    page = user.open("/no-such-page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    user.shot("00-not-found")
    page.get_by_role("link", name="Back to the home page").click()
    expect(page).to_have_url(f"{base}/")
    page.get_by_role("main").get_by_role("link", name="Sign up").click()
    expect(page).to_have_url(f"{base}/signup")
    user.shot("01-signup")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    # The same answer whether or not the email was registered: on to sign in.
    expect(page).to_have_url(f"{base}/login?signed_up=1")
    expect(page.get_by_role("status")).to_contain_text("account is ready")
    user.shot("02-signed-up")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/dashboard")
    expect(page.locator('[data-balance="test"]').first).to_have_text("100")
    # The first visit shows a first test key, once.
    first_key = page.locator("#new-key").inner_text()
    assert first_key.startswith("aio_test_")
    user.shot("03-dashboard")
    page = user.open("/dashboard")
    expect(page.locator("[data-first-key]")).to_have_count(0)

    # A test key, created and copied.
    page = user.open("/keys")
    page.get_by_label("Name").fill("console")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("aio_test_")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    user.shot("04-keys-created")

    # A sandbox generation from the console; its image appears.
    page = user.open("/console")
    expect(page.locator("#fields [name=prompt]")).to_be_visible()
    assert page.locator("#api-key").input_value() == key  # carried over from the copy
    picker = page.locator("#key-pick")
    assert picker.locator("option:checked").inner_text().startswith("console")
    # The first key's secret was never given to this tab: the page asks for it, once.
    picker.select_option(hint(first_key))
    assert page.locator("#api-key").input_value() == ""
    expect(page.locator("#key-note")).to_contain_text("Paste the secret of first test key")
    page.locator("#api-key").fill(first_key)
    expect(page.locator("#key-note")).to_contain_text("Remembered")
    page = user.open("/console")
    page.locator("#key-pick").select_option(hint(first_key))
    assert page.locator("#api-key").input_value() == first_key  # kept by the tab
    page.locator("#key-pick").select_option(hint(key))
    assert page.locator("#api-key").input_value() == key
    # A reference image uploaded from the console goes into `images`.
    page.locator("#upload").set_input_files(str(FOX))
    expect(page.locator("#uploads img")).to_be_visible()
    expect(page.locator("#upload-note")).to_contain_text("640×640")
    uploaded = page.locator("#fields [name=images]").input_value()
    assert uploaded.startswith(f"{base}/files/up_"), uploaded
    expect(page.locator("#curl")).to_contain_text(uploaded)
    page.locator("#fields [name=prompt]").fill("A lighthouse at dusk")
    page.locator("#fields [name=aspect_ratio]").select_option("16:9")
    expect(page.locator("#curl")).to_contain_text('"aspect_ratio":"16:9"')
    page.get_by_role("button", name="Send request").click()
    expect(page.locator("#status")).to_contain_text("completed", timeout=30_000)
    image = page.locator("#images img").first
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('#images img').naturalWidth > 0")
    assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [1360, 768]
    user.shot("05-console-generated")
    # The layout holds after a long answer: the controls keep their height.
    for control in ("#model", "#key-pick", "#api-key", "#send"):
        assert page.locator(control).bounding_box()["height"] < 60, control

    # The task's own page, from the gallery.
    page = user.open("/tasks")
    page.locator('.task a[href^="/tasks/task_"]').first.click()
    expect(page.locator("[data-status]")).to_have_text("completed")
    expect(page.locator("blockquote.prompt")).to_have_text("A lighthouse at dusk")
    expect(page.locator('tr[data-param="images"]')).to_contain_text(uploaded)
    expect(page.locator("#task-curl")).to_contain_text('"aspect_ratio": "16:9"')
    result = page.locator(".results img").first
    page.wait_for_function("document.querySelector('.results img').naturalWidth > 0")
    assert result.evaluate("i => i.naturalWidth") == 1360
    page.get_by_role("button", name="Copy this code").first.click()
    assert "/api/v1/images/generations" in page.evaluate("navigator.clipboard.readText()")
    user.shot("05-task-page")

    # Phone-sized console.
    phone = Tab(browser, base, viewport={"width": 390, "height": 844})
    phone.context.add_cookies(user.context.cookies())
    phone.open("/console")
    phone.shot("06-console-phone")
    phone.open(user.page.url)  # the task page
    phone.shot("06-task-phone")
    assert not phone.foreign()
    phone.context.close()
    visitor = Tab(browser, base, viewport={"width": 390, "height": 844})
    visitor.open("/")
    visitor.shot("06-landing-phone")
    assert not visitor.foreign()
    visitor.context.close()

    # Revoke the key: the console's next call is refused with 401.
    page = user.open("/keys")
    page.get_by_role("button", name="Revoke console").click()
    expect(page.locator("td.state").first).to_have_text("revoked")
    page = user.open("/console")
    page.locator("#api-key").fill(key)
    page.locator("#fields [name=prompt]").fill("Refused")
    page.get_by_role("button", name="Send request").click()
    expect(page.locator("#status")).to_contain_text("Error 401")
    user.shot("07-console-401")

    # The charge in the ledger, the task in the gallery, the docs.
    page = user.open("/usage")
    capture = page.locator('tr[data-kind="capture"]')
    expect(capture).to_have_count(1)
    expect(capture.locator("td").nth(3)).to_have_text("6")
    expect(page.locator('[data-balance="test"]')).to_have_text("94")
    user.shot("08-usage")
    user.open("/tasks")
    user.shot("09-tasks")
    user.open("/models")
    user.shot("10-models")
    page = user.open("/models/kling-image-o1")
    multi_shot = page.locator('tr[data-type="ai-multi-shot"] .price')
    expect(multi_shot).to_have_text("16 credits per request")
    user.shot("11-model-page")

    # An operator grants credits; the user sees the new balance.
    operator = Tab(browser, base)
    page = operator.open("/login")
    page.get_by_label("Email").fill("op@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page = operator.open("/admin")
    row = page.locator('tr[data-account="ada@example.com"]')
    row.get_by_label("Credits").fill("250")
    row.get_by_label("Reason").fill("browser test grant")
    row.get_by_role("button", name="Apply").click()
    expect(row.locator("td").nth(3)).to_have_text("344")
    operator.shot("12-admin")

    page = user.open("/dashboard")
    expect(page.locator('[data-balance="test"]').first).to_have_text("344")
    user.shot("13-dashboard-after-grant")
    page = user.open("/usage")
    expect(page.locator('tr[data-kind="grant"]').first).to_contain_text("browser test grant")

    # Sign out: the dashboard asks for a sign-in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base}/login")
    user.open("/dashboard")
    expect(user.page).to_have_url(f"{base}/login")

    assert user.foreign() == [] and operator.foreign() == []


def test_a_sandbox_video_plays_in_the_console(site: dict[str, Any], browser: Any) -> None:
    """Integer enums, booleans and output.videos through the console: the MP4 and its
    poster load from our origin and the browser decodes the video."""
    from playwright.sync_api import expect

    base = site["base"]
    user = Tab(browser, base)
    page = user.open("/signup")
    page.get_by_label("Email").fill("vid@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/login?signed_up=1")
    page.get_by_label("Email").fill("vid@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/dashboard")
    page = user.open("/keys")
    page.get_by_label("Name").fill("video")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()

    page = user.open("/console")
    page.locator("#model").select_option("seedance-1-pro")
    expect(page.locator("#fields [name=duration]")).to_be_visible()
    page.locator("#api-key").fill(key)
    page.locator("#fields [name=prompt]").fill("A paper boat on a pond")
    page.locator("#fields [name=duration]").select_option("2")
    page.locator("#fields [name=resolution]").select_option("480p")
    page.locator("#fields [name=camera_fixed]").select_option("true")
    expect(page.locator("#curl")).to_contain_text('"duration":2')
    expect(page.locator("#curl")).to_contain_text('"camera_fixed":true')
    page.get_by_role("button", name="Send request").click()
    expect(page.locator("#status")).to_contain_text("completed", timeout=30_000)
    video = page.locator("#images video").first
    expect(video).to_be_visible()
    page.wait_for_function("document.querySelector('#images video').readyState >= 1")
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [640, 360]
    assert abs(video.evaluate("v => v.duration") - 2) <= 0.1
    user.shot("10-console-video")
    assert not user.foreign()
    user.context.close()


def test_profile_and_two_factor_enrolment_in_a_real_browser(
    site: dict[str, Any], browser: Any
) -> None:
    """The profile page renders (its QR code inline, allowed by the CSP), two-factor is
    set up with a code computed from the key shown, and the next sign-in asks for one."""
    from datetime import timedelta

    from playwright.sync_api import expect

    from mediagate.accounts.totp import code_at
    from mediagate.core.clock import utcnow

    base = site["base"]
    user = Tab(browser, base)
    page = user.open("/signup")
    page.get_by_label("Email").fill("otp@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_label("Email").fill("otp@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/dashboard")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Profile").click()
    expect(page).to_have_url(f"{base}/profile")
    expect(page.locator("[data-email]")).to_have_text("otp@example.com")
    expect(page.locator("[data-current]")).to_have_count(1)
    page.get_by_label("Display name").fill("Otto")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[data-viewer]")).to_have_text("Otto")
    user.shot("11-profile")

    page.get_by_role("button", name="Set up two-factor sign-in").click()
    expect(page.locator("svg.segno")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text()
    user.shot("12-two-factor-setup")
    page.get_by_label("Code").fill(code_at(secret, utcnow()))
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("[data-recovery-code]")).to_have_count(10)
    user.shot("13-recovery-codes")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill("otp@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/login/code")
    page.get_by_label("Code").fill(code_at(secret, utcnow() + timedelta(seconds=30)))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/dashboard")
    assert not user.foreign()
    user.context.close()


def test_buying_and_redeeming_credits_in_a_real_browser(site: dict[str, Any], browser: Any) -> None:
    """Top up → Buy → the fake Stripe's hosted page → Pay: the signed
    `checkout.session.completed` reaches the server, the browser comes back to the receipt
    and the live balance is up by exactly the package's credits; the order is paid on the
    Orders page. A code from `mediagate codes create` is redeemed on the dashboard, and
    refused the second time. The usage charts are drawn, also on a phone."""
    import json
    import re

    from playwright.sync_api import expect

    from tests.e2e.procs import poll, submit

    base, env, stripe = site["base"], site["env"], site["stripe"]
    user = Tab(browser, base)
    page = user.open("/signup")
    page.get_by_label("Email").fill("buyer@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_label("Email").fill("buyer@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/dashboard")
    first_key = page.locator("#new-key").inner_text()
    expect(page.locator('[data-balance="live"]')).to_have_text("0")

    # Top up: a package bought through (fake) Stripe Checkout.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Top up").click()
    expect(page).to_have_url(f"{base}/topup")
    starter = page.locator('[data-package="starter"]')
    expect(starter).to_contain_text("500 credits")
    user.shot("20-topup")
    starter.get_by_role("button", name="Buy Starter").click()
    expect(page).to_have_url(re.compile(re.escape(stripe.base) + r"/c/pay/cs_test_\w+$"))
    session = stripe.sessions[page.url.rsplit("/", 1)[1]]
    order_id = session["client_reference_id"]
    assert order_id.startswith("ord_") and session["amount_total"] == 500
    assert session["customer_email"] == "buyer@example.com"
    user.shot("21-stripe-checkout")
    page.get_by_role("button", name="Pay 5.00 USD").click()
    # Stripe delivered the signed event, then sent the customer to the success URL.
    expect(page).to_have_url(f"{base}/orders/{order_id}?checkout=done")
    expect(page.locator("article.receipt")).to_have_attribute("data-status", "paid")
    user.shot("22-receipt-after-checkout")
    page.reload()  # a second look at the success URL grants nothing more
    page = user.open("/dashboard")
    expect(page.locator('[data-balance="live"]')).to_have_text("500")
    expect(page.locator('[data-balance="test"]')).to_have_text("100")
    page = user.open("/orders")
    expect(page.locator("tr[data-order]")).to_have_count(1)
    row = page.locator(f'tr[data-order="{order_id}"]')
    expect(row.locator("td.status")).to_have_text("paid")
    expect(row).to_contain_text("5.00 USD")
    user.shot("23-orders")
    row.get_by_role("link", name="Receipt").click()
    expect(page).to_have_url(f"{base}/orders/{order_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Receipt {order_id}")
    expect(page.locator(".receipt dd.status")).to_have_text("paid")
    user.shot("24-receipt")

    # A redemption code made by the operator, redeemed on the dashboard; then refused.
    made = json.loads(cli(env, "codes", "create", "--credits", "300", "--count", "1", "--json"))
    (code,) = made["codes"]
    page = user.open("/dashboard")
    page.get_by_label("Code").fill(code)
    user.shot("25-dashboard-redeem")
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_role("status")).to_contain_text("300 live credits added (800 now)")
    expect(page.locator('[data-balance="live"]')).to_have_text("800")
    user.shot("25-redeemed")
    page = user.open("/dashboard")
    expect(page.locator('[data-balance="live"]')).to_have_text("800")
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_role("alert")).to_have_text("You have already redeemed this code")
    expect(page.locator('[data-balance="live"]')).to_have_text("800")
    user.shot("26-redeemed-twice")

    # Two sandbox tasks, then the charts of Credits & usage.
    for prompt in ("A red kite", "A blue kite"):
        task = submit(base, first_key, {"model": "kling-image-o1", "prompt": prompt})
        assert poll(base, first_key, task)["status"] == "completed"
    page = user.open("/usage")
    page.locator("select[name=chart_mode]").select_option("test")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"chart_mode=test"))

    def drawn(tab: Tab) -> None:
        spend = tab.page.locator('svg[data-chart="credits-per-day"]')
        expect(spend).to_be_visible()
        assert [
            int(c)
            for c in spend.locator("rect.bar").evaluate_all(
                "bars => bars.map(b => b.dataset.credits)"
            )
        ][-1] == 12  # today: two images at 6 credits
        tall = spend.locator("rect.bar").last.bounding_box()
        assert tall and tall["height"] > 10 and tall["width"] > 1
        kling = tab.page.locator('svg[data-chart="tasks-per-model"] g[data-model="kling-image-o1"]')
        expect(kling).to_have_attribute("data-tasks", "2")
        expect(kling).to_have_attribute("data-success", "100")
        bar = kling.locator("rect.bar").bounding_box()
        assert bar and bar["width"] > 10
        # Nothing overflows the viewport sideways.
        assert tab.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    drawn(user)
    user.shot("27-usage-charts")
    phone = Tab(browser, base, viewport={"width": 390, "height": 844})
    phone.context.add_cookies(user.context.cookies())
    phone.open("/usage?chart_mode=test")
    drawn(phone)
    phone.shot("28-usage-charts-phone")
    phone.open("/topup")
    phone.shot("28-topup-phone")
    phone.open(f"/orders/{order_id}")
    phone.shot("28-receipt-phone")
    assert not phone.foreign()
    phone.context.close()
    # The only other origin the browser saw: the (fake) Stripe Checkout page.
    assert {u.split("/c/pay/")[0] for u in user.foreign()} == {stripe.base}
    user.context.close()
