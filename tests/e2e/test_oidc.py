"""'Sign in with ...' end to end: the real app in a subprocess against a real OIDC provider on loopback.

Most journeys use an httpx client that keeps cookies and follows every redirect by hand,
so each hop can be checked (never off-site); two run in Chromium through the login page's
button. The app's SQLite control plane is read directly to see which users and links exist.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveApp, start_app, stop_app
from tests.fixtures.oidc_provider import OIDCProvider, ProviderUser, Tamper, running_provider

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture(scope="module")
def live_app(provider: OIDCProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The app with OIDC_* pointing at the provider (this module's `page` and `sign_up` use it too)."""
    process, app = start_app(tmp_path_factory.mktemp("oidc-app") / "data", provider.env())
    provider.client.redirect_uris.append(f"{app.base_url}/auth/oidc/callback")
    try:
        yield app
    finally:
        stop_app(process)


@pytest.fixture(autouse=True)
def _fresh_script(provider: OIDCProvider) -> None:
    provider.reset()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as browserless:
        yield browserless


def new_user(provider: OIDCProvider, *, email: str | None = None, verified: bool = True) -> ProviderUser:
    """A provider user with a fresh subject, preset as the one who signs in next."""
    token = secrets.token_hex(4)
    user = provider.add_user(
        ProviderUser(sub=f"sub-{token}", email=email or f"oidc-{token}@example.com", email_verified=verified)
    )
    provider.sign_in_as = user.sub
    return user


# --- walking redirects ---------------------------------------------------------------------


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Journey:
    hops: list[httpx.Response]

    @property
    def final(self) -> httpx.Response:
        return self.hops[-1]

    @property
    def path(self) -> str:
        return self.final.url.path


def follow(client: httpx.Client, url: str, app: LiveApp, provider: OIDCProvider) -> Journey:
    """GET `url` and every redirect after it, refusing any hop that leaves the app or the provider."""
    allowed = {origin(app.base_url), origin(provider.issuer)}
    hops: list[httpx.Response] = []
    for _ in range(12):
        assert origin(url) in allowed, f"redirected off-site to {url!r} after {[str(h.url) for h in hops]}"
        response = client.get(url)
        hops.append(response)
        if not response.is_redirect:
            return Journey(hops)
        url = str(response.url.join(response.headers["location"]))
    raise AssertionError("more than 12 redirects")


def begin(client: httpx.Client, app: LiveApp, provider: OIDCProvider, next_path: str = "/workspaces") -> str:
    """Start a sign-in and let the provider approve it; returns the callback URL, not yet visited."""
    start = client.get(f"{app.base_url}/auth/oidc/login", params={"next": next_path})
    assert start.is_redirect, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{provider.issuer}/authorize?")
    answer = client.get(authorize)
    assert answer.is_redirect, answer.text
    callback = answer.headers["location"]
    assert callback.startswith(f"{app.base_url}/auth/oidc/callback?"), callback
    return callback


def sign_in(client: httpx.Client, app: LiveApp, provider: OIDCProvider, next_path: str = "/workspaces") -> Journey:
    return follow(client, f"{app.base_url}/auth/oidc/login?{urlencode({'next': next_path})}", app, provider)


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def signed_in(client: httpx.Client, app: LiveApp) -> bool:
    """Whether this client's cookies carry a session: /workspaces answers 200, or sends it to /login."""
    response = client.get(f"{app.base_url}/workspaces")
    if response.status_code == 200:
        return True
    assert response.is_redirect, response.status_code
    assert response.headers["location"].startswith("/login")
    return False


def assert_refused(journey: Journey, client: httpx.Client, app: LiveApp, message: str) -> None:
    assert journey.final.status_code == 200
    assert journey.path == "/login", [str(h.url) for h in journey.hops]
    assert message in journey.final.text, journey.final.text[-2000:]
    assert "Traceback" not in journey.final.text
    assert not signed_in(client, app)


# --- the control plane, read directly ------------------------------------------------------


def query(app: LiveApp, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(Path(app.data_dir) / "control.db") as conn:
        return list(conn.execute(sql, args))


def users_with(app: LiveApp, email: str) -> list[tuple[object, ...]]:
    return query(app, "SELECT id, password_hash FROM users WHERE email = ?", email)


def links_of(app: LiveApp, user_id: object) -> list[tuple[object, ...]]:
    return query(app, "SELECT issuer, subject FROM oidc_links WHERE user_id = ?", user_id)


def password_account(client: httpx.Client, app: LiveApp) -> tuple[str, str]:
    """An account made by password sign-up (with its own tenant); returns (email, tenant slug)."""
    token = secrets.token_hex(3)
    email, slug = f"pw-{token}@example.com", f"team_{token}"
    response = client.post(
        f"{app.base_url}/api/auth/signup",
        json={"email": email, "password": PASSWORD, "tenant_slug": slug, "tenant_name": f"Team {token}"},
    )
    assert response.status_code == 201, response.text
    return email, slug


# --- journeys that work ---------------------------------------------------------------------


def test_first_sign_in_creates_a_user_and_lands_on_next(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider
) -> None:
    person = new_user(provider)
    journey = sign_in(client, live_app, provider, next_path="/workspaces?from=oidc")
    assert journey.final.status_code == 200
    assert str(journey.final.url) == f"{live_app.base_url}/workspaces?from=oidc"
    assert person.email in journey.final.text
    assert signed_in(client, live_app)
    [(user_id, password_hash)] = users_with(live_app, person.email)
    assert password_hash is None
    assert links_of(live_app, user_id) == [(provider.issuer, person.sub)]
    # The authorization request carried what the callback is checked against.
    sent = provider.authorization_requests[-1]
    assert sent["state"]
    assert sent["nonce"]
    assert sent["code_challenge_method"] == "S256"
    assert set(sent["scope"].split()) >= {"openid", "email"}


def test_second_sign_in_with_the_same_subject_reuses_the_account(live_app: LiveApp, provider: OIDCProvider) -> None:
    person = new_user(provider)
    with httpx.Client(timeout=30) as first:
        assert sign_in(first, live_app, provider).path == "/workspaces"
    [(user_id, _)] = users_with(live_app, person.email)
    # The provider now reports another address for the same subject: the link decides, not the email.
    provider.add_user(ProviderUser(sub=person.sub, email=f"renamed-{person.email}", email_verified=True))
    with httpx.Client(timeout=30) as second:
        journey = sign_in(second, live_app, provider)
        assert journey.path == "/workspaces"
        assert person.email in journey.final.text
        assert signed_in(second, live_app)
    assert users_with(live_app, f"renamed-{person.email}") == []
    assert links_of(live_app, user_id) == [(provider.issuer, person.sub)]


def test_verified_email_links_an_existing_password_account(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider
) -> None:
    email, slug = password_account(client, live_app)
    [(user_id, password_hash)] = users_with(live_app, email)
    person = new_user(provider, email=email.upper(), verified=True)
    journey = sign_in(client, live_app, provider)
    assert journey.path == "/workspaces"
    assert slug in journey.final.text  # the password account's own tenant
    assert password_hash is not None
    # Same account; its address was never verified, so the password (whoever chose it) ends.
    assert users_with(live_app, email) == [(user_id, None)]
    assert links_of(live_app, user_id) == [(provider.issuer, person.sub)]


def test_unverified_email_does_not_link_an_existing_account(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider
) -> None:
    email, _ = password_account(client, live_app)
    [(user_id, _)] = users_with(live_app, email)
    new_user(provider, email=email, verified=False)
    journey = sign_in(client, live_app, provider)
    assert_refused(journey, client, live_app, "not verified at the identity provider")
    assert links_of(live_app, user_id) == []


def test_unverified_email_creates_no_account(client: httpx.Client, live_app: LiveApp, provider: OIDCProvider) -> None:
    person = new_user(provider, verified=False)
    assert_refused(sign_in(client, live_app, provider), client, live_app, "not verified at the identity provider")
    assert users_with(live_app, person.email) == []


def test_a_second_identity_at_the_provider_cannot_take_over_a_linked_account(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider
) -> None:
    person = new_user(provider)
    assert sign_in(client, live_app, provider).path == "/workspaces"
    [(user_id, _)] = users_with(live_app, person.email)
    newcomer = new_user(provider, email=person.email)  # the mailbox was handed to someone else
    with httpx.Client(timeout=30) as other:
        journey = sign_in(other, live_app, provider)
        assert_refused(journey, other, live_app, "linked to another identity at this provider")
    assert links_of(live_app, user_id) == [(provider.issuer, person.sub)]
    assert newcomer.sub != person.sub


# --- abuse: state, code, nonce, token, next ---------------------------------------------------


@pytest.mark.parametrize("state", [None, "forged-state", ""], ids=["missing", "wrong", "empty"])
def test_callback_without_this_browsers_state_is_refused_before_the_code_is_used(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider, state: str | None
) -> None:
    new_user(provider)
    callback = begin(client, live_app, provider)
    journey = follow(client, with_query(callback, state=state), live_app, provider)
    assert_refused(journey, client, live_app, "not started in this browser")
    assert provider.issued_tokens == 0  # the code was never exchanged
    assert len(provider.codes) == 1


def test_callback_in_another_browser_is_refused(live_app: LiveApp, provider: OIDCProvider) -> None:
    """Login CSRF: a victim's browser is sent to the attacker's callback URL; its session knows no such state."""
    new_user(provider)
    with httpx.Client(timeout=30) as attacker, httpx.Client(timeout=30) as victim:
        callback = begin(attacker, live_app, provider)
        assert_refused(follow(victim, callback, live_app, provider), victim, live_app, "not started in this browser")


def test_replayed_callback_is_refused(client: httpx.Client, live_app: LiveApp, provider: OIDCProvider) -> None:
    new_user(provider)
    callback = begin(client, live_app, provider)
    cookies_before = httpx.Cookies(client.cookies)  # still holding the state of this sign-in
    assert follow(client, callback, live_app, provider).path == "/workspaces"
    assert provider.issued_tokens == 1
    # The same browser again: its state was used up by the first visit (it stays signed in as it was).
    replay = client.get(callback)
    assert replay.is_redirect
    assert replay.headers["location"].startswith("/login")
    assert provider.issued_tokens == 1
    # A copy of the cookies from before the callback: not signed in (the browser got a new id at
    # sign-in); replaying the callback with it, the state matches but the used code does not.
    with httpx.Client(timeout=30, cookies=cookies_before) as copied:
        assert not signed_in(copied, live_app)
        assert_refused(follow(copied, callback, live_app, provider), copied, live_app, "refused the sign-in code")
    assert provider.issued_tokens == 1
    assert provider.token_errors == ["invalid_grant"]


def test_replayed_code_is_refused_by_the_provider(live_app: LiveApp, provider: OIDCProvider) -> None:
    """A used code with a fresh, valid state of the attacker's own: the app exchanges it, the provider says no."""
    new_user(provider)
    with httpx.Client(timeout=30) as victim:
        used = begin(victim, live_app, provider)
        assert follow(victim, used, live_app, provider).path == "/workspaces"
    with httpx.Client(timeout=30) as attacker:
        fresh = begin(attacker, live_app, provider)
        injected = with_query(fresh, code=dict(parse_qsl(urlsplit(used).query))["code"])
        journey = follow(attacker, injected, live_app, provider)
        assert_refused(journey, attacker, live_app, "refused the sign-in code")
    assert provider.token_errors == ["invalid_grant"]


def test_code_from_another_sign_in_is_refused(live_app: LiveApp, provider: OIDCProvider) -> None:
    """An unused code stolen from someone else's sign-in fails PKCE (and its nonce is not ours)."""
    new_user(provider)
    with httpx.Client(timeout=30) as victim, httpx.Client(timeout=30) as attacker:
        stolen = dict(parse_qsl(urlsplit(begin(victim, live_app, provider)).query))["code"]
        fresh = begin(attacker, live_app, provider)
        journey = follow(attacker, with_query(fresh, code=stolen), live_app, provider)
        assert_refused(journey, attacker, live_app, "refused the sign-in code")
    assert provider.token_errors == ["invalid_grant"]


@pytest.mark.parametrize("tamper", ["nonce", "missing_nonce", "audience", "signature", "expired", "issuer"])
def test_id_token_that_fails_verification_signs_nobody_in(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider, tamper: Tamper
) -> None:
    person = new_user(provider)
    provider.tamper = tamper
    journey = sign_in(client, live_app, provider)
    assert_refused(journey, client, live_app, "did not pass verification")
    assert provider.issued_tokens > 0  # it got as far as the token endpoint
    assert users_with(live_app, person.email) == []


def test_token_response_without_id_token_signs_nobody_in(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider
) -> None:
    person = new_user(provider)
    provider.tamper = "no_id_token"
    assert_refused(sign_in(client, live_app, provider), client, live_app, "sent no identity token")
    assert users_with(live_app, person.email) == []


def test_provider_refusal_ends_on_the_login_page(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider
) -> None:
    provider.sign_in_as = None  # nobody approves: the provider answers access_denied
    assert_refused(sign_in(client, live_app, provider), client, live_app, "did not allow the sign-in")


@pytest.mark.parametrize(
    "next_path",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "http:evil.example"],
)
def test_open_redirect_next_lands_on_this_site(
    client: httpx.Client, live_app: LiveApp, provider: OIDCProvider, next_path: str
) -> None:
    new_user(provider)
    journey = sign_in(client, live_app, provider, next_path=next_path)  # `follow` refuses off-site hops
    assert str(journey.final.url) == f"{live_app.base_url}/workspaces"


def test_next_in_the_callback_url_is_ignored(client: httpx.Client, live_app: LiveApp, provider: OIDCProvider) -> None:
    new_user(provider)
    callback = begin(client, live_app, provider, next_path="/workspaces?kept=1")
    journey = follow(client, with_query(callback, next="https://evil.example/"), live_app, provider)
    assert str(journey.final.url) == f"{live_app.base_url}/workspaces?kept=1"


# --- in the browser -------------------------------------------------------------------------


def test_sign_in_button_in_the_browser(page: Page, live_app: LiveApp, provider: OIDCProvider) -> None:
    person = new_user(provider)
    page.goto(f"{live_app.base_url}/login?next=/workspaces")
    page.get_by_test_id("login-oidc").click()
    page.wait_for_url(f"{live_app.base_url}/workspaces")
    expect(page.get_by_test_id("signed-in-as")).to_have_text(person.email)


def test_failed_sign_in_shows_why_on_the_login_page(page: Page, live_app: LiveApp, provider: OIDCProvider) -> None:
    new_user(provider)
    provider.tamper = "nonce"
    page.goto(f"{live_app.base_url}/login?next=/workspaces")
    page.get_by_test_id("login-oidc").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/login" and "oidc" not in url)
    expect(page.get_by_test_id("login-error")).to_contain_text("did not pass verification")
    page.reload()
    expect(page.get_by_test_id("login-error")).to_be_hidden()  # shown once
