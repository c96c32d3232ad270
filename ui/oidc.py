"""/auth/oidc/login and /auth/oidc/callback: "Sign in with ..." through an OpenID Connect provider.

authlib's Starlette client speaks the protocol (authorization code flow with PKCE). What
is checked where:

- login: the provider's metadata comes from `<OIDC_ISSUER>/.well-known/openid-configuration`
  (first use only; its `issuer` must be the configured one). authlib puts a fresh `state`,
  `nonce` and PKCE verifier in Starlette's signed session cookie; the page to land on
  afterwards (`next`, made safe with `safe_next`) goes beside them, bound to that state.
- callback: a `state` that this browser did not start is refused (authlib keeps one per
  browser and drops it on first use, so a replayed callback fails too); the code is
  exchanged once (the provider refuses a used code); the id_token must carry a signature
  from the provider's JWKS with an asymmetric algorithm, our issuer, our client id as
  audience, an unexpired `exp` and the `nonce` of this login. Only then does
  `OIDCAccounts.sign_in` pick the user and a browser session begin.

Every failure ends on /login with a sentence saying what went wrong (kept for one view in
the session cookie); the `next` from the callback URL is never used.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import quote

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from authlib.integrations.starlette_client.apps import StarletteOAuth2App
from joserfc.errors import JoseError
from nicegui import app
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core.errors import ConfigurationError, CoreError
from core.settings import OIDCSettings
from ui.session import DEFAULT_LANDING, flash_login_error, safe_next
from ui.sign_in import start_browser_session
from wiring.services import Services

log = logging.getLogger(__name__)

LOGIN_PATH = "/auth/oidc/login"
CALLBACK_PATH = "/auth/oidc/callback"
CLIENT_NAME = "oidc"
PENDING_KEY = "crewcanvas_oidc_pending"  # {"state": ..., "next": ...} in the signed session cookie

# Symmetric algorithms would make the client secret a signing key; "none" signs nothing.
_SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_REQUIRED_METADATA = ("authorization_endpoint", "token_endpoint", "jwks_uri")
_LEEWAY_S = 60
_MISCONFIGURED = "sign-in with the identity provider is misconfigured; ask an operator"


class OIDCSignIn:
    """The two routes of the browser flow, on one authlib client built from `OIDC_*` settings."""

    def __init__(self, services: Services, settings: OIDCSettings) -> None:
        self._services = services
        self._issuer = settings.issuer.rstrip("/")
        self._client_id = settings.client_id
        self._base_url = services.settings.base_url.rstrip("/")
        scopes = settings.scopes.split()
        if "openid" not in scopes:
            scopes.insert(0, "openid")  # without it there is no id_token and no nonce
        oauth = OAuth()
        self._client: StarletteOAuth2App = oauth.register(
            name=CLIENT_NAME,
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value() or None,
            server_metadata_url=f"{self._issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": " ".join(scopes), "code_challenge_method": "S256", "timeout": 10.0},
        )

    async def login(self, request: Request) -> Response:
        """Send the browser to the provider, remembering where it should land afterwards."""
        target = safe_next(request.query_params.get("next"))
        state = secrets.token_urlsafe(32)
        try:
            await self._metadata()
            response: Response = await self._client.authorize_redirect(
                request, self._callback_url(request), state=state
            )
        except ConfigurationError as exc:
            log.error("OIDC sign-in is misconfigured: %s", exc)
            return _back_to_login(request, target, _MISCONFIGURED)
        except (httpx.HTTPError, ValueError, AuthlibBaseError) as exc:
            log.warning("OIDC provider %s could not be asked for its configuration: %r", self._issuer, exc)
            return _back_to_login(
                request, target, "the identity provider cannot be reached right now; try again later or use a password"
            )
        request.session[PENDING_KEY] = {"state": state, "next": target}
        return response

    async def callback(self, request: Request) -> Response:
        """Check the provider's answer, then sign the browser in and send it to the remembered page."""
        pending = request.session.pop(PENDING_KEY, None)
        state = request.query_params.get("state")
        target = DEFAULT_LANDING
        if isinstance(pending, dict) and state and secrets.compare_digest(str(pending.get("state")), state):
            target = safe_next(pending.get("next"))
        try:
            await self._metadata()
            token = await self._client.authorize_access_token(
                request, claims_options=self._claims_options(), leeway=_LEEWAY_S
            )
        except ConfigurationError as exc:
            log.error("OIDC sign-in is misconfigured: %s", exc)
            return _back_to_login(request, target, _MISCONFIGURED)
        except AuthlibBaseError as exc:
            log.info("OIDC callback refused: %s", exc.error)
            return _back_to_login(request, target, _explain(exc))
        except JoseError as exc:
            log.warning("OIDC id_token from %s refused: %s", self._issuer, exc.error)
            return _back_to_login(
                request, target, "the identity provider's answer did not pass verification; start the sign-in again"
            )
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("OIDC provider %s failed during the code exchange: %r", self._issuer, type(exc).__name__)
            return _back_to_login(
                request, target, "the identity provider cannot be reached right now; try again later or use a password"
            )
        claims = token.get("userinfo")
        if not isinstance(claims, dict):
            log.warning("OIDC provider %s answered without an id_token", self._issuer)
            return _back_to_login(
                request, target, "the identity provider sent no identity token; start the sign-in again"
            )
        try:
            user = await self._services.identity.oidc.sign_in(str(claims["iss"]), claims)
            session = await self._services.identity.sessions.create(user.id)
        except CoreError as exc:
            return _back_to_login(request, target, str(exc))
        await start_browser_session(request, session)
        return RedirectResponse(target, status_code=303)

    async def _metadata(self) -> dict[str, Any]:
        """The provider's discovery document, checked (authlib fetches it once and keeps it)."""
        metadata: dict[str, Any] = await self._client.load_server_metadata()
        issuer = metadata.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self._issuer:
            raise ConfigurationError(
                f"the discovery document names issuer {issuer!r}, not OIDC_ISSUER {self._issuer!r}; "
                "set OIDC_ISSUER to the provider's issuer exactly"
            )
        missing = [name for name in _REQUIRED_METADATA if not metadata.get(name)]
        if missing:
            raise ConfigurationError(f"the provider's discovery document lacks {', '.join(missing)}")
        advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        usable = [alg for alg in advertised if alg in _SIGNING_ALGORITHMS]
        if not usable:
            raise ConfigurationError(
                f"the provider signs id_tokens only with {advertised}; an asymmetric algorithm (e.g. RS256) is needed"
            )
        # authlib accepts whatever the metadata lists: narrow it to signatures we trust.
        metadata["id_token_signing_alg_values_supported"] = usable
        return metadata

    def _claims_options(self) -> dict[str, dict[str, Any]]:
        # A fresh dict per call: authlib pops entries from it while validating.
        return {
            "iss": {"essential": True, "value": self._issuer_claim()},
            "aud": {"essential": True, "value": self._client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "nonce": {"essential": True},
        }

    def _issuer_claim(self) -> str:
        issuer = self._client.server_metadata.get("issuer")
        return issuer if isinstance(issuer, str) else self._issuer

    def _callback_url(self, request: Request) -> str:
        if self._base_url:
            return self._base_url + CALLBACK_PATH
        return str(request.url_for("oidc_callback"))


def _explain(exc: AuthlibBaseError) -> str:
    if exc.error == "mismatching_state":
        return "this sign-in was not started in this browser, or was already used; start the sign-in again"
    if exc.error == "access_denied":
        return "the identity provider did not allow the sign-in"
    if exc.error == "invalid_grant":
        return "the identity provider refused the sign-in code (it was used already or has expired); start again"
    return f"the identity provider refused the sign-in ({exc.error}); start the sign-in again"


def _back_to_login(request: Request, target: str, message: str) -> Response:
    flash_login_error(request, message)
    request.session.pop(PENDING_KEY, None)
    return RedirectResponse("/login?next=" + quote(target, safe="/"), status_code=303)


def register(services: Services) -> None:
    """Add the two routes when OIDC is configured (OIDC_ISSUER and OIDC_CLIENT_ID); nothing connects yet."""
    settings = services.settings.oidc
    if not settings.enabled:
        return
    flow = OIDCSignIn(services, settings)
    app.add_route(LOGIN_PATH, flow.login, methods=["GET"], name="oidc_login", include_in_schema=False)
    app.add_route(CALLBACK_PATH, flow.callback, methods=["GET"], name="oidc_callback", include_in_schema=False)
