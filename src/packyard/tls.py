"""TLS: the certificate `packyard run` serves HTTPS with, and the CA bundle Packyard trusts as a client."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import certifi

from packyard.config import CONFIG_NAME, Settings
from packyard.errors import ConfigError

# Part of a certificate error's text, e.g. httpx's `[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed`.
_CERTIFICATE_PROBLEM = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed")


def check_server_tls(settings: Settings) -> None:
    """Fail at startup, naming the key and the file, when the certificate, its key or the CA bundle cannot serve."""
    server = settings.server
    if server.tls_certificate:
        _readable(settings, "tls_certificate", "the server's certificate (PEM, its chain after it)")
        _readable(settings, "tls_key", "the certificate's private key (PEM, unencrypted)")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # A callback, so that an encrypted key fails here rather than prompting for a passphrase.
            context.load_cert_chain(server.tls_certificate, server.tls_key, password=lambda: b"")
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                problem = (
                    f"the key `server.tls_key` ({server.tls_key}) does not match the certificate "
                    f"`server.tls_certificate` ({server.tls_certificate}); set both to the files of one certificate"
                )
            else:
                problem = (
                    f"`server.tls_certificate` ({server.tls_certificate}) and `server.tls_key` ({server.tls_key}) "
                    f"could not be loaded as a PEM certificate and its unencrypted PEM key ({exc}); decrypt the key "
                    "with `openssl pkey -in KEY -out KEY.pem` or point the keys at PEM files"
                )
            raise ConfigError(f"TLS: {problem} in {_where(settings)}.") from exc
    if server.ca_bundle:
        _readable(settings, "ca_bundle", "a PEM bundle of the certificate authorities Packyard trusts")
        client_context(server.ca_bundle)  # raises ConfigError on a file with no certificates


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's `ssl_certfile` and `ssl_keyfile` when the server serves HTTPS itself, else nothing."""
    if not settings.server.tls_certificate:
        return {}
    return {"ssl_certfile": settings.server.tls_certificate, "ssl_keyfile": settings.server.tls_key}


def client_context(ca_bundle: str) -> ssl.SSLContext:
    """What Packyard trusts as a client: `ca_bundle` alone when set, else the system's store (certifi's when
    the system has none, as on a minimal container image)."""
    if ca_bundle:
        try:
            return ssl.create_default_context(cafile=ca_bundle)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"Config `server.ca_bundle` has value {ca_bundle!r}, which holds no PEM certificate ({exc}); "
                "point it at a PEM file of CA certificates."
            ) from exc
    context = ssl.create_default_context()
    if not context.get_ca_certs():
        context.load_verify_locations(cafile=certifi.where())
    return context


def describe_failure(exc: Exception) -> str:
    """An upstream request's failure in words; an untrusted certificate says which setting trusts it."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if any(part in text for part in _CERTIFICATE_PROBLEM):
        text += (
            " (the upstream's TLS certificate is not trusted: if an internal certificate authority issued it, set "
            "`[server] ca_bundle` in packyard.toml, or PACKYARD_SERVER_CA_BUNDLE, to a PEM file that holds that "
            "authority's certificate)"
        )
    return text


def _readable(settings: Settings, key: str, what: str) -> None:
    value = getattr(settings.server, key)
    env = f"PACKYARD_SERVER_{key.upper()}"
    path = Path(value)
    if not path.is_file():
        raise ConfigError(
            f"TLS: `server.{key}` has value {value!r}, which is not a file; set it in {_where(settings)} "
            f"(or {env}) to {what}."
        )
    if not os.access(path, os.R_OK):
        raise ConfigError(
            f"TLS: `server.{key}` has value {value!r}, which this user (uid {os.getuid()}) cannot read; give it read "
            f"access (e.g. `chmod 640` and the server's group), or change the key in {_where(settings)}."
        )


def _where(settings: Settings) -> str:
    return f"`[server]` of {settings.data_dir.resolve() / CONFIG_NAME}"
