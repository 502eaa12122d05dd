"""OpenID Connect as a relying party: an issuer's discovery document and signing keys, and the checks every
identity token passes (signature, issuer, audience, expiry, nonce) before Packyard believes a claim in it. The
same checks serve the sign-in provider (`[oidc]`) and identity federation's CI issuers (trust rules)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import jwt
from jwt import PyJWKClient

from packyard.auth.errors import IdentityProviderError, InvalidIdentityToken

DISCOVERY_TTL = 3600.0  # seconds an issuer's discovery document is reused
# Asymmetric algorithms only: an HS256 token "signed" with a public key must never pass.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY = 30  # seconds of clock difference forgiven on `exp`, `iat` and `nbf`
TIMEOUT = 10.0


class Issuer:
    """One OpenID issuer: its endpoints from `/.well-known/openid-configuration`, and its keys, fetched again
    when a token names a key id not seen yet (the issuer rotated its keys)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._document: dict[str, Any] | None = None
        self._fetched = 0.0
        self._keys: PyJWKClient | None = None
        self._lock = threading.Lock()

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None or time.monotonic() - self._fetched > DISCOVERY_TTL:
                url = f"{self.url}/.well-known/openid-configuration"
                try:
                    answer = httpx.get(url, timeout=TIMEOUT, follow_redirects=True)
                    answer.raise_for_status()
                    document = answer.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise IdentityProviderError(
                        f"Could not read the OpenID configuration of `{self.url}` ({exc}); check the issuer URL "
                        "and that this server can reach it."
                    ) from exc
                if str(document.get("issuer", "")).rstrip("/") != self.url:
                    raise IdentityProviderError(
                        f"`{url}` names the issuer {document.get('issuer')!r}, not `{self.url}`; configure the "
                        "issuer exactly as the provider names itself."
                    )
                self._document, self._fetched = document, time.monotonic()
                self._keys = PyJWKClient(document["jwks_uri"], cache_keys=True, lifespan=300, timeout=int(TIMEOUT))
            return self._document

    def endpoint(self, name: str) -> str:
        url = self.document().get(name)
        if not isinstance(url, str):
            raise IdentityProviderError(f"The provider `{self.url}` offers no `{name}`; enable it there.")
        return url

    def verify(
        self, token: str, audience: str, nonce: str | None = None, what: str = "identity token"
    ) -> dict[str, Any]:
        """The token's claims, once its signature, issuer, audience, expiry (and nonce) check out;
        InvalidIdentityToken saying which check failed otherwise."""
        self.document()
        assert self._keys is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidIdentityToken(f"The {what} is not a JWT ({exc}).") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidIdentityToken(f"The {what} is signed with {header.get('alg')!r}; only public-key "
                                       "signatures are accepted.")  # fmt: skip
        try:
            key = self._keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientError as exc:
            raise InvalidIdentityToken(f"The {what}'s signing key is not one `{self.url}` publishes ({exc}).") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=audience,
                issuer=self.url,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidIdentityToken(f"The {what} has expired; get a new one.") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidIdentityToken(f"The {what} is not for this server: its audience is not `{audience}`.") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidIdentityToken(f"The {what} was not issued by `{self.url}`.") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidIdentityToken(f"The {what}'s signature does not verify with `{self.url}`'s keys.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidIdentityToken(f"The {what} is not valid: {exc}.") from exc
        if nonce is not None and claims.get("nonce") != nonce:
            raise InvalidIdentityToken(f"The {what}'s nonce does not match this sign-in; sign in again.")
        return claims


class Issuers:
    """Every issuer this server has talked to, by URL, so discovery and keys are fetched once per issuer."""

    def __init__(self) -> None:
        self._issuers: dict[str, Issuer] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Issuer:
        key = url.rstrip("/")
        with self._lock:
            if key not in self._issuers:
                self._issuers[key] = Issuer(key)
            return self._issuers[key]


def unverified_issuer(token: str) -> str:
    """The `iss` a token claims, to find which issuer's keys must verify it; never trusted on its own."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidIdentityToken(f"The token is not a JWT ({exc}).") from exc
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InvalidIdentityToken("The token names no issuer (`iss`).")
    return issuer.rstrip("/")
