"""Settings: one TOML file in the data directory, every key overridable by `PACKYARD_<SECTION>_<KEY>`."""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packyard.errors import ConfigError

CONFIG_NAME = "packyard.toml"
DEFAULT_DATA_DIR = "./packyard-data"

# Written on first start so an operator sees every key in one place.
DEFAULT_CONFIG = """\
# Packyard configuration. Every key can be overridden by an environment variable
# named PACKYARD_<SECTION>_<KEY>, e.g. PACKYARD_DATABASE_URL.

[server]
# The public address clients use; token issuer and absolute links derive from it. Unset, it is
# http://<host>:<port> of the running server (`packyard run --host/--port` included; 127.0.0.1 for 0.0.0.0);
# set it when clients reach the server by another name, e.g. through a proxy:
# address = "https://packages.example.com"
# Serve content (`/content/<guid>/`) on an origin of its own, so a content page's script cannot use a viewer's
# session on Packyard's pages and API (docs/SECURITY.md). The same server answers it, told apart by the Host
# header; point that name at this server, e.g. a subdomain:
# content_address = "https://content.packages.example.com"
# Serve HTTPS directly: PEM files of the certificate (its chain after it) and its unencrypted key; the address
# then defaults to https://<host>:<port>. Relative paths are inside the data directory.
# tls_certificate = "/etc/packyard/tls/server.pem"
# tls_key = "/etc/packyard/tls/server.key"
# The certificate authorities Packyard trusts as a client (its mirror upstream, and the uv that builds content
# environments from this server's own index), as one PEM file, instead of the system's store: add an internal
# CA to the public ones, e.g. `cat /etc/ssl/certs/ca-certificates.crt internal-ca.pem > ca-bundle.pem`.
# ca_bundle = "/etc/packyard/tls/ca-bundle.pem"
host = "127.0.0.1"
port = 4242
access_log = true
# Server processes on this machine (`packyard run --workers N`), each serving from the same socket as a node of
# its own would (docs/SCALING.md). More than 1 needs PostgreSQL (`[database] url`): SQLite serves one process.
workers = 1

[database]
# Empty means SQLite in the data directory. For PostgreSQL:
# url = "postgresql+psycopg://user@host:5432/packyard"
url = ""

[storage]
# "local": a content-addressed blob folder (`path`; relative paths are inside the data directory).
# "s3": an S3-compatible bucket; credentials come from the usual AWS_* variables or ~/.aws files.
type = "local"
path = "blobs"
# bucket = "packyard"
# prefix = ""                 # keys are <prefix>blobs/<sha256>
# endpoint_url = ""           # empty for AWS; e.g. "http://minio:9000"
# region = ""
# Answer file downloads with a redirect to a presigned bucket URL instead of relaying the bytes.
# redirect = false

[authentication]
# API tokens for uploads and authenticated repositories (PPM's APITokenAuth).
api_token_auth = true

[upload]
max_file_size = "100MiB"

[mirror]
# The upstream simple index that the `pypi` source mirrors; empty means no mirror. The public one is
# "https://pypi.org/simple/". Once set, repository `pypi` serves it below `local-python-src`.
upstream = ""
# Seconds a cached upstream index page is used before it is revalidated (with its ETag).
index_ttl = 1800
# Seconds to wait for the upstream; after a failure, serve cached pages for `retry_after` seconds.
timeout = 10
retry_after = 30

[python]
# Interpreters that content runs on; empty means those found on the host (`uv python list`).
executables = []
# Require the bundle's exact Python (3.11.7) instead of the same major.minor (3.11).
exact_version_matching = false
# Build an environment for each bundle; false runs content on the host's Python and its packages.
environment_management = true
# The index environments install from; empty means this server's own `pypi` repository.
# Credentials for authenticated indexes come from netrc (set NETRC for the server process).
index_url = ""
extra_index_urls = []
# Packages taken from the host's Python instead of installed, e.g. ["numpy"].
external = []
# Use an external package only when the host's version satisfies the bundle's requirement.
external_version_matching = false
# Refuse to start when an interpreter lacks an external package.
externals_check_is_fatal = true
# Packages dropped from every install (they cannot install on this OS).
prohibited = ["pywin32", "pywinpty", "pypiwin32"]
# Seconds between reaper runs; environments no content uses and unused for this long are removed.
environment_reap_frequency = 86400

[publishing]
bundle_max_size = "1GiB"
bundle_max_entries = 20000
# Key that encrypts content environment variables at rest; empty means the key file `encryption-key`.
encryption_key = ""
# Seconds a notebook or Quarto render may run at deploy time before it is stopped and the deploy fails.
render_timeout = 1800

[scheduler]
# How interactive content runs: the defaults for a content item whose own setting is null (Connect's names;
# `PATCH /__api__/v1/content/<guid>` or `packyard content runtime` sets them per content).
min_processes = 0
max_processes = 3
max_conns_per_process = 20
# 0.0 starts another process for almost every new connection; 1.0 fills each process first.
load_factor = 0.5
# Seconds: a process with no connection stops after `idle_timeout` (down to `min_processes`); a new one
# has `init_timeout` to answer; the proxy gives up on an app silent for `connection_timeout` and on a
# client silent for `read_timeout` (0: never).
idle_timeout = 5
init_timeout = 60
connection_timeout = 3600
read_timeout = 3600
# Caps on what publishers may set.
max_processes_limit = 20
min_processes_limit = 20
# Seconds a request waits for a free connection when every process is full, before a 503.
queue_timeout = 30
# What one content process may use: bytes of memory (address space; an allocation past it fails), processes
# and threads in its sandbox, and open files. Each content may lower or raise them up to the caps below.
memory_limit = 4294967296
process_limit = 512
open_files_limit = 4096
max_memory_limit = 17179869184
max_process_limit = 4096
max_open_files_limit = 65536

[applications]
# Every publisher's code (apps, notebook and Quarto renders, environment builds) runs in a bubblewrap
# sandbox that sees only its own content. "off" runs it as the server's own user, able to read the
# server's secrets and database: only for a server whose every publisher is trusted with it.
sandbox = "on"
# When the server runs as root, content runs as this unprivileged user (created on first start if missing).
run_as = "packyard-content"

[web]
# Seconds a browser stays signed in to the web pages; then it signs in again.
session_lifetime = 43200

[oidc]
# Sign in through the company's OpenID Connect provider (authorization code with PKCE); empty `issuer`: off,
# passwords only. The provider must allow the redirect URI `<address>/login/oidc/callback`, and the device flow
# for posit-keyring (`/__api__/device`). Local passwords keep working for a break-glass administrator.
issuer = ""
client_id = ""
client_secret = ""
scopes = ["openid", "profile", "email", "groups"]
# The ID token's claims that give a user's name, e-mail and groups.
username_claim = "preferred_username"
email_claim = "email"
groups_claim = "groups"
# Members of these provider groups get the role; everyone else gets `default_role`. Set at every sign-in.
admin_groups = []
publisher_groups = []
default_role = "viewer"
# Seconds a token made from an identity token (`/__api__/token`: posit-keyring, CI) is valid.
token_lifetime = 3600

[quarto]
# The `quarto` binary that renders Quarto content; empty means `quarto` on PATH, else the `quarto-cli`
# package's binary when the content's requirements install it.
executable = ""
"""


# What first start wrote before the address followed `host` and `port`: in a file, it counts as unset.
_FROZEN_ADDRESS = (
    "# The public address clients use; token issuer and absolute links derive from it.\n"
    'address = "http://127.0.0.1:4242"\n'
)
# Where `packyard run` records the address it serves at when none is configured, for the other commands.
SERVED_ADDRESS_NAME = "served-address"


@dataclass
class ServerSettings:
    address: str = ""  # empty: `http(s)://<host>:<port>`, see `address_of`
    content_address: str = ""  # empty: content shares `address`'s origin; see `check_content_address`
    tls_certificate: str = ""  # PEM; with `tls_key`, `packyard run` serves HTTPS (tls.py checks them at start)
    tls_key: str = ""
    ca_bundle: str = ""  # PEM: what Packyard trusts as a client; empty: the system's store
    host: str = "127.0.0.1"
    port: int = 4242
    access_log: bool = True
    workers: int = 1


@dataclass
class DatabaseSettings:
    url: str = ""


@dataclass
class StorageSettings:
    type: str = "local"
    path: str = "blobs"
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    redirect: bool = False


@dataclass
class AuthenticationSettings:
    api_token_auth: bool = False
    # Signing key for tokens; empty means the key file in the data directory.
    secret: str = ""


@dataclass
class UploadSettings:
    max_file_size: str = "100MiB"


@dataclass
class MirrorSettings:
    upstream: str = ""
    index_ttl: int = 1800
    timeout: int = 10
    retry_after: int = 30


@dataclass
class PythonSettings:
    executables: list[str] = field(default_factory=list)
    exact_version_matching: bool = False
    environment_management: bool = True
    index_url: str = ""
    extra_index_urls: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    external_version_matching: bool = False
    externals_check_is_fatal: bool = True
    prohibited: list[str] = field(default_factory=lambda: ["pywin32", "pywinpty", "pypiwin32"])
    environment_reap_frequency: int = 86400


@dataclass
class PublishingSettings:
    bundle_max_size: str = "1GiB"
    bundle_max_entries: int = 20000
    encryption_key: str = ""
    render_timeout: int = 1800


@dataclass
class SchedulerSettings:
    """Server defaults for content runtime settings, and the caps on what a publisher may set."""

    min_processes: int = 0
    max_processes: int = 3
    max_conns_per_process: int = 20
    load_factor: float = 0.5
    idle_timeout: int = 5
    init_timeout: int = 60
    connection_timeout: int = 3600
    read_timeout: int = 3600
    max_processes_limit: int = 20
    min_processes_limit: int = 20
    queue_timeout: int = 30
    memory_limit: int = 4 * 1024**3
    process_limit: int = 512
    open_files_limit: int = 4096
    max_memory_limit: int = 16 * 1024**3
    max_process_limit: int = 4096
    max_open_files_limit: int = 65536


@dataclass
class ApplicationSettings:
    """How publishers' code runs: sandboxed (bubblewrap) or not, and as which user when the server is root."""

    sandbox: str = "on"
    run_as: str = "packyard-content"


@dataclass
class QuartoSettings:
    executable: str = ""


@dataclass
class WebSettings:
    session_lifetime: int = 43200  # seconds: a working day


@dataclass
class OidcSettings:
    issuer: str = ""
    display_name: str = ""  # what the login page's button calls the provider; its host name when empty
    client_id: str = ""
    client_secret: str = ""
    scopes: list[str] = field(default_factory=lambda: ["openid", "profile", "email", "groups"])
    username_claim: str = "preferred_username"
    email_claim: str = "email"
    groups_claim: str = "groups"
    admin_groups: list[str] = field(default_factory=list)
    publisher_groups: list[str] = field(default_factory=list)
    default_role: str = "viewer"
    token_lifetime: int = 3600

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR))
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    authentication: AuthenticationSettings = field(default_factory=AuthenticationSettings)
    upload: UploadSettings = field(default_factory=UploadSettings)
    mirror: MirrorSettings = field(default_factory=MirrorSettings)
    python: PythonSettings = field(default_factory=PythonSettings)
    publishing: PublishingSettings = field(default_factory=PublishingSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    applications: ApplicationSettings = field(default_factory=ApplicationSettings)
    quarto: QuartoSettings = field(default_factory=QuartoSettings)
    web: WebSettings = field(default_factory=WebSettings)
    oidc: OidcSettings = field(default_factory=OidcSettings)
    # Whether `server.address` was configured (file or variable), rather than derived from `host` and `port`.
    address_configured: bool = False
    # Which of `packyard run --workers N`'s processes this is (1..N), 0 for a server of one process: a worker keeps
    # what must be its own (extracted bundles, logs, rendered sites) under `workers/<n>/`, see `apps_dir`.
    worker: int = 0

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'packyard.db').resolve()}"

    @property
    def apps_dir(self) -> Path:
        """Where this process extracts bundles and keeps each content's logs and rendered output."""
        return self.data_dir / "apps" if not self.worker else self.data_dir / "workers" / str(self.worker) / "apps"

    @property
    def blob_dir(self) -> Path:
        return (self.data_dir / self.storage.path).resolve()

    @property
    def max_file_size(self) -> int:
        return parse_size(self.upload.max_file_size)

    @property
    def bundle_max_size(self) -> int:
        return parse_size(self.publishing.bundle_max_size)

    @property
    def index_url(self) -> str:
        """Where content environments install from: the configured index, else this server's `pypi` repository."""
        return self.python.index_url or self.server.address.rstrip("/") + "/pypi/latest/simple/"

    def token_secret(self) -> str:
        """The HS256 signing key: the configured one, else a key file created once in the data directory."""
        if self.authentication.secret:
            return self.authentication.secret
        return self._key_file("token-secret", lambda: secrets.token_urlsafe(48))

    def encryption_key(self) -> bytes:
        """The 256-bit key for content environment variables: configured (hex), else a key file made once."""
        if self.publishing.encryption_key:
            try:
                key = bytes.fromhex(self.publishing.encryption_key)
            except ValueError:
                key = b""
            if len(key) != 32:
                raise ConfigError("Config `publishing.encryption_key` must be 64 hex digits (a 256-bit key).")
            return key
        return bytes.fromhex(self._key_file("encryption-key", lambda: secrets.token_hex(32)))

    def _key_file(self, name: str, make: Callable[[], str]) -> str:
        """A secret kept in the data directory, readable by its owner only, created on first use."""
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(make())
        return path.read_text().strip()


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(text: str | int) -> int:
    """Parse `100MiB`, `5 MB` or a plain byte count."""
    if isinstance(text, int):
        return text
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgib")
    unit = value[len(number) :]
    if not number.isdigit() or unit not in _SIZE_UNITS:
        raise ConfigError(f"Size {text!r} is not valid; write a number of bytes or e.g. `100MiB`.")
    return int(number) * _SIZE_UNITS[unit]


def _coerce(section: str, key: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
    elif kind is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            pass
    elif kind is float:
        if not isinstance(raw, bool):
            try:
                return float(raw)
            except (TypeError, ValueError):
                pass
    elif kind is list:
        if isinstance(raw, str):  # from an environment variable: comma-separated
            return [item.strip() for item in raw.split(",") if item.strip()]
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            return raw
    elif isinstance(raw, str | int | float):
        return str(raw)
    expected = "list of strings" if kind is list else kind.__name__
    raise ConfigError(f"Config `{section}.{key}` has value {raw!r}; expected a {expected}.")


def load_settings(data_dir: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read `packyard.toml` from the data directory and apply `PACKYARD_*` overrides."""
    env = os.environ if environ is None else environ
    root = Path(data_dir or env.get("PACKYARD_DATA_DIR") or DEFAULT_DATA_DIR)
    settings = Settings(data_dir=root)
    path = root / CONFIG_NAME
    document: dict[str, Any] = {}
    if path.exists():
        text = path.read_text()
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        if _FROZEN_ADDRESS in text:
            document.get("server", {}).pop("address", None)
    document, env = _moved_keys(document, env)
    for section_field in fields(settings):
        section = getattr(settings, section_field.name)
        if not is_dataclass(section):
            continue
        values = document.get(section_field.name, {})
        known = {f.name: f for f in fields(section)}
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown key `{section_field.name}.{key}`; known keys: {', '.join(sorted(known))}."
                )
        for name in known:
            kind = type(getattr(section, name))
            env_name = f"PACKYARD_{section_field.name}_{name}".upper()
            if env_name in env:
                setattr(section, name, _coerce(section_field.name, name, env[env_name], kind))
            elif name in values:
                setattr(section, name, _coerce(section_field.name, name, values[name], kind))
    _check_tls_paths(settings, path)
    settings.address_configured = bool(settings.server.address)
    if not settings.address_configured:
        settings.server.address = address_of(
            settings.server.host, settings.server.port, tls=bool(settings.server.tls_certificate)
        )
    settings.server.content_address = check_content_address(settings.server.content_address, settings.server.address)
    settings.max_file_size  # noqa: B018 - fail at startup, not at the first upload
    settings.bundle_max_size  # noqa: B018
    _check_scheduler(settings.scheduler)
    if settings.server.workers < 1:
        raise ConfigError(
            f"Config `server.workers` has value {settings.server.workers}; expected a number of processes, at least 1."
        )
    if settings.applications.sandbox not in ("on", "off"):
        raise ConfigError(
            f'Config `applications.sandbox` has value {settings.applications.sandbox!r}; expected "on" or "off".'
        )
    if settings.web.session_lifetime < 1:
        raise ConfigError(
            f"Config `web.session_lifetime` has value {settings.web.session_lifetime}; expected seconds, at least 1."
        )
    _check_oidc(settings.oidc)
    _check_storage(settings.storage)
    upstream = settings.mirror.upstream
    if upstream and not upstream.startswith(("http://", "https://")):
        raise ConfigError(
            f"Config `mirror.upstream` has value {upstream!r}; expected an http(s) URL of a simple index, "
            "e.g. `https://pypi.org/simple/`."
        )
    return settings


def address_of(host: str, port: int, tls: bool = False) -> str:
    """The address of a server listening on `host`:`port`; one on every interface is reached on loopback."""
    if host in {"", "0.0.0.0", "::"}:
        host = "127.0.0.1"
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _check_tls_paths(settings: Settings, config: Path) -> None:
    """Both of `tls_certificate` and `tls_key` or neither; relative paths made absolute in the data directory (the
    files themselves are checked by `packyard run`, tls.py)."""
    server = settings.server
    if bool(server.tls_certificate) != bool(server.tls_key):
        given, missing = ("tls_certificate", "tls_key") if server.tls_certificate else ("tls_key", "tls_certificate")
        raise ConfigError(
            f"Config `server.{given}` is set but `server.{missing}` is not: HTTPS needs both the certificate and "
            f"its key. Set `server.{missing}` in `[server]` of {config} (or PACKYARD_SERVER_{missing.upper()}), "
            f"or unset `server.{given}` to serve plain HTTP."
        )
    for key in ("tls_certificate", "tls_key", "ca_bundle"):
        value = getattr(server, key)
        if value and not Path(value).is_absolute():
            setattr(server, key, str((settings.data_dir / value).resolve()))


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-case, without the scheme's default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host += f":{port}"
    return f"{scheme}://{host}"


def _check_storage(storage: StorageSettings) -> None:
    if storage.type not in ("local", "s3"):
        raise ConfigError(f'Config `storage.type` has value {storage.type!r}; expected "local" or "s3".')
    if storage.type == "s3" and not storage.bucket:
        raise ConfigError(
            'Config `storage.bucket` is empty; `storage.type = "s3"` needs the bucket to store blobs in '
            "(or set PACKYARD_STORAGE_BUCKET)."
        )
    if storage.endpoint_url and not storage.endpoint_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"Config `storage.endpoint_url` has value {storage.endpoint_url!r}; expected an http(s) URL of an "
            "S3-compatible server, e.g. `http://minio:9000`, or empty for AWS."
        )
    if storage.redirect and storage.type != "s3":
        raise ConfigError('Config `storage.redirect = true` needs `storage.type = "s3"`: a local store has no URL.')


def _check_oidc(oidc: OidcSettings) -> None:
    if not oidc.issuer:
        return
    if not oidc.issuer.startswith(("http://", "https://")):
        raise ConfigError(
            f"Config `oidc.issuer` has value {oidc.issuer!r}; expected the provider's http(s) URL, whose "
            "`/.well-known/openid-configuration` Packyard reads, e.g. `https://login.example.com/realms/main`."
        )
    if not oidc.client_id:
        raise ConfigError("Config `oidc.client_id` is empty; set the client id the provider gave Packyard.")
    if oidc.default_role not in ("viewer", "publisher", "admin"):
        raise ConfigError(
            f"Config `oidc.default_role` has value {oidc.default_role!r}; expected viewer, publisher or admin."
        )
    if oidc.token_lifetime < 60:
        raise ConfigError(f"Config `oidc.token_lifetime` has value {oidc.token_lifetime}; expected seconds, >= 60.")


def check_content_address(value: str, address: str) -> str:
    """`[server] content_address` as `scheme://host[:port]`: an origin of its own, never the main address's."""
    value = value.strip()
    if not value:
        return ""
    problem = ""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "expected an http(s) URL with a host name"
        elif parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
            problem = "expected an origin only (scheme, host and port), with no path, query or user"
        elif parts.hostname.lower() == (urlsplit(address).hostname or "").lower():
            # Cookies are kept per host name, whatever the port: the main session would reach the content origin.
            problem = f"it has the host name of `server.address` ({address}), and content needs a host name of its own"
    if problem:
        raise ConfigError(
            f"Config `server.content_address` has value {value!r}: {problem}, e.g. `https://content.example.com`."
        )
    return origin_of(value)


def _moved_keys(document: dict[str, Any], env: Any) -> tuple[dict[str, Any], Any]:
    """`[publishing] init_timeout` is `[scheduler] init_timeout` now; files written on first start carry it."""
    legacy = document.get("publishing", {}).pop("init_timeout", None)
    if legacy is not None:
        document.setdefault("scheduler", {}).setdefault("init_timeout", legacy)
    old, new = "PACKYARD_PUBLISHING_INIT_TIMEOUT", "PACKYARD_SCHEDULER_INIT_TIMEOUT"
    if old in env and new not in env:
        env = {**env, new: env[old]}
    return document, env


def _check_scheduler(s: SchedulerSettings) -> None:
    """The defaults obey the rules a content's own settings do, so every content starts with valid ones."""
    timeouts = {k: getattr(s, k) for k in ("idle_timeout", "connection_timeout", "read_timeout", "queue_timeout")}
    rules = [
        (s.max_processes <= s.max_processes_limit, f"`max_processes` ({s.max_processes}) is over "
         f"`max_processes_limit` ({s.max_processes_limit})"),
        (s.min_processes <= s.min_processes_limit, f"`min_processes` ({s.min_processes}) is over "
         f"`min_processes_limit` ({s.min_processes_limit})"),
        (s.min_processes <= s.max_processes, f"`min_processes` ({s.min_processes}) is over `max_processes` "
         f"({s.max_processes})"),
        (s.max_processes >= 1 and s.max_conns_per_process >= 1, "`max_processes` and `max_conns_per_process` "
         "must be at least 1"),
        (0.0 <= s.load_factor <= 1.0, f"`load_factor` ({s.load_factor:g}) is not from 0.0 to 1.0"),
        (s.init_timeout >= 1, f"`init_timeout` ({s.init_timeout}) must be at least 1 second"),
        (s.min_processes >= 0 and min(timeouts.values()) >= 0, "counts and timeouts must not be negative"),
        (s.memory_limit <= s.max_memory_limit, f"`memory_limit` ({s.memory_limit}) is over `max_memory_limit` "
         f"({s.max_memory_limit})"),
        (s.process_limit <= s.max_process_limit, f"`process_limit` ({s.process_limit}) is over "
         f"`max_process_limit` ({s.max_process_limit})"),
        (s.open_files_limit <= s.max_open_files_limit, f"`open_files_limit` ({s.open_files_limit}) is over "
         f"`max_open_files_limit` ({s.max_open_files_limit})"),
        (min(s.memory_limit, s.process_limit, s.open_files_limit) >= 1, "`memory_limit`, `process_limit` and "
         "`open_files_limit` must be at least 1"),
    ]  # fmt: skip
    for ok, problem in rules:
        if not ok:
            raise ConfigError(
                f"Config `[scheduler]`: {problem}; fix packyard.toml or the PACKYARD_SCHEDULER_* variables."
            )


def write_default_config(data_dir: Path) -> None:
    """Create the data directory and its commented configuration file, once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CONFIG_NAME
    if not path.exists():
        path.write_text(DEFAULT_CONFIG)
