"""Configuration: the TOML file in the data directory, overridden by PACKYARD_* variables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from packyard.config import load_settings, parse_size, write_default_config
from packyard.errors import ConfigError
from packyard.workers import check_database


def test_defaults_are_embedded(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.database_url == f"sqlite:///{(tmp_path / 'packyard.db').resolve()}"
    assert settings.blob_dir == (tmp_path / "blobs").resolve()
    assert settings.server.port == 4242
    assert settings.max_file_size == 100 * 1024 * 1024


def test_written_default_config_turns_tokens_on(tmp_path: Path) -> None:
    write_default_config(tmp_path)
    assert load_settings(tmp_path, environ={}).authentication.api_token_auth is True


def test_environment_overrides_file(tmp_path: Path) -> None:
    (tmp_path / "packyard.toml").write_text('[server]\nport = 5000\n[upload]\nmax_file_size = "1MiB"\n')
    env = {"PACKYARD_SERVER_PORT": "6000", "PACKYARD_AUTHENTICATION_API_TOKEN_AUTH": "yes"}
    settings = load_settings(tmp_path, environ=env)
    assert settings.server.port == 6000
    assert settings.authentication.api_token_auth is True
    assert settings.max_file_size == 1024 * 1024


def test_data_dir_from_environment(tmp_path: Path) -> None:
    assert load_settings(None, environ={"PACKYARD_DATA_DIR": str(tmp_path)}).data_dir == tmp_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1\n", "unknown key `server.prot`"),
        ("[server]\nport = 'eighty'\n", "Config `server.port` has value 'eighty'; expected a int."),
        ("[upload]\nmax_file_size = '10 parsecs'\n", "Size '10 parsecs' is not valid"),
        ("[server\n", "is not valid TOML"),
    ],
)
def test_bad_config_is_reported(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "packyard.toml").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_settings(tmp_path, environ={})


def test_bad_override_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Config `authentication.api_token_auth` has value 'maybe'"):
        load_settings(tmp_path, environ={"PACKYARD_AUTHENTICATION_API_TOKEN_AUTH": "maybe"})


@pytest.mark.parametrize(("text", "size"), [("100MiB", 104857600), ("5 MB", 5000000), ("123", 123), (7, 7)])
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_token_secret_is_created_once(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    secret = settings.token_secret()
    assert len(secret) > 40 and settings.token_secret() == secret
    assert (tmp_path / "token-secret").stat().st_mode & 0o777 == 0o600


def test_scheduler_defaults_from_file_and_environment(tmp_path: Path) -> None:
    # `[publishing] init_timeout` is what earlier versions wrote; it still counts, as `[scheduler] init_timeout`.
    (tmp_path / "packyard.toml").write_text("[publishing]\ninit_timeout = 90\n[scheduler]\nmax_processes = 5\n")
    scheduler = load_settings(tmp_path, environ={"PACKYARD_SCHEDULER_LOAD_FACTOR": "0.8"}).scheduler
    assert (scheduler.init_timeout, scheduler.max_processes, scheduler.load_factor) == (90, 5, 0.8)
    assert scheduler.idle_timeout == 5 and scheduler.max_conns_per_process == 20


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"PACKYARD_SCHEDULER_MIN_PROCESSES": "4"}, "`min_processes` (4) is over `max_processes` (3)"),
        ({"PACKYARD_SCHEDULER_MAX_PROCESSES": "30"}, "`max_processes` (30) is over `max_processes_limit` (20)"),
        ({"PACKYARD_SCHEDULER_LOAD_FACTOR": "2"}, "`load_factor` (2) is not from 0.0 to 1.0"),
        (
            {"PACKYARD_SCHEDULER_LOAD_FACTOR": "half"},
            "Config `scheduler.load_factor` has value 'half'; expected a float.",
        ),
    ],
)
def test_bad_scheduler_defaults_stop_the_start(tmp_path: Path, override: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path, environ=override)
    assert message in str(error.value)


def test_address_follows_host_and_port_unless_set(tmp_path: Path) -> None:
    write_default_config(tmp_path)
    assert load_settings(tmp_path, environ={"PACKYARD_SERVER_PORT": "8080"}).server.address == "http://127.0.0.1:8080"
    settings = load_settings(tmp_path, environ={"PACKYARD_SERVER_HOST": "0.0.0.0"})
    assert (settings.server.address, settings.address_configured) == ("http://127.0.0.1:4242", False)
    # What first start wrote before counts as unset; an address the operator wrote does not.
    frozen = '# The public address clients use; token issuer and absolute links derive from it.\naddress = "http://127.0.0.1:4242"\n'
    (tmp_path / "packyard.toml").write_text(f"[server]\n{frozen}port = 5000\n")
    assert load_settings(tmp_path, environ={}).server.address == "http://127.0.0.1:5000"
    (tmp_path / "packyard.toml").write_text('[server]\naddress = "http://127.0.0.1:4242"\nport = 5000\n')
    settings = load_settings(tmp_path, environ={})
    assert (settings.server.address, settings.address_configured) == ("http://127.0.0.1:4242", True)


def test_content_address_is_an_origin_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "packyard.toml").write_text('[server]\naddress = "https://packages.example.com"\n')
    assert load_settings(tmp_path, environ={}).server.content_address == ""  # unset: one origin, as before
    variable = {"PACKYARD_SERVER_CONTENT_ADDRESS": "HTTPS://Content.Example.com:443/"}
    assert load_settings(tmp_path, environ=variable).server.content_address == "https://content.example.com"
    local = {
        "PACKYARD_SERVER_ADDRESS": "http://127.0.0.1:4242",
        "PACKYARD_SERVER_CONTENT_ADDRESS": "http://content.localhost:4242",
    }
    assert load_settings(tmp_path, environ=local).server.content_address == "http://content.localhost:4242"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("content.example.com", "expected an http(s) URL with a host name"),
        ("ftp://content.example.com", "expected an http(s) URL with a host name"),
        ("https://content.example.com/apps/", "expected an origin only (scheme, host and port), with no path"),
        ("https://content.example.com/?x=1", "expected an origin only"),
        (
            "https://packages.example.com:8443",
            "it has the host name of `server.address` (https://packages.example.com)",
        ),
        ("https://content.example.com:port", "Port could not be cast"),
    ],
)
def test_a_content_address_that_is_not_an_origin_of_its_own_is_refused(
    tmp_path: Path, value: str, problem: str
) -> None:
    (tmp_path / "packyard.toml").write_text('[server]\naddress = "https://packages.example.com"\n')
    with pytest.raises(ConfigError, match="server.content_address") as error:
        load_settings(tmp_path, environ={"PACKYARD_SERVER_CONTENT_ADDRESS": value})
    assert problem in str(error.value)


def test_workers_from_file_and_environment_and_their_folders(tmp_path: Path) -> None:
    write_default_config(tmp_path)
    settings = load_settings(tmp_path, {})
    assert settings.server.workers == 1 and settings.apps_dir == tmp_path / "apps"
    settings = load_settings(tmp_path, {"PACKYARD_SERVER_WORKERS": "4"})
    assert settings.server.workers == 4
    assert replace(settings, worker=2).apps_dir == tmp_path / "workers" / "2" / "apps"
    with pytest.raises(ConfigError, match=r"`server.workers` has value 0; expected a number of processes"):
        load_settings(tmp_path, {"PACKYARD_SERVER_WORKERS": "0"})


@pytest.mark.parametrize("url", ["", "sqlite:////tmp/elsewhere.db"])
def test_sqlite_refuses_more_than_one_worker(tmp_path: Path, url: str) -> None:
    settings = load_settings(tmp_path, {"PACKYARD_SERVER_WORKERS": "2", "PACKYARD_DATABASE_URL": url})
    with pytest.raises(ConfigError, match=r"need PostgreSQL, .* set `\[database\] url`"):
        check_database(settings)
    check_database(load_settings(tmp_path, {"PACKYARD_SERVER_WORKERS": "1", "PACKYARD_DATABASE_URL": url}))


def test_tls_makes_the_address_https_and_paths_absolute(tmp_path: Path) -> None:
    (tmp_path / "packyard.toml").write_text('[server]\ntls_certificate = "tls/server.pem"\ntls_key = "/etc/k.pem"\n')
    settings = load_settings(tmp_path, environ={"PACKYARD_SERVER_CA_BUNDLE": "ca.pem"})
    assert settings.server.address == "https://127.0.0.1:4242"
    assert settings.server.tls_certificate == str((tmp_path / "tls" / "server.pem").resolve())
    assert (settings.server.tls_key, settings.server.ca_bundle) == ("/etc/k.pem", str((tmp_path / "ca.pem").resolve()))
    configured = {"PACKYARD_SERVER_ADDRESS": "https://packages.example.com"}
    assert load_settings(tmp_path, environ=configured).server.address == "https://packages.example.com"


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`server.tls_key` is not") as error:
        load_settings(tmp_path, environ={"PACKYARD_SERVER_TLS_CERTIFICATE": "/etc/server.pem"})
    assert "PACKYARD_SERVER_TLS_KEY" in str(error.value) and str(tmp_path / "packyard.toml") in str(error.value)
