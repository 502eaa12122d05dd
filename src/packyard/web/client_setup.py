"""What the setup page tells clients: a repository's index URL for `latest` or a date, and the pip, uv,
requirements.txt, pyproject.toml, environment and `.netrc` text that points each client at it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_PLACEHOLDER = "YOUR_TOKEN"
PACKAGE_PLACEHOLDER = "PACKAGE"
_UV_INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Snippet:
    id: str
    label: str  # what the text is, or where it goes (a file name)
    text: str
    note: str = ""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    intro: str
    snippets: list[Snippet]


def index_url(address: str, repo: str, snapshot: str) -> str:
    """`{address}/{repo}/{latest|YYYY-MM-DD}/simple/` from `[server] address`."""
    return f"{address.rstrip('/')}/{repo}/{snapshot}/simple/"


def netrc_machine(address: str) -> str:
    """The host alone: a netrc `machine` has no scheme, port or path."""
    return urlsplit(address).hostname or address


def sections(address: str, repo: str, snapshot: str, authenticated: bool, package: str = "") -> list[Section]:
    url = index_url(address, repo, snapshot)
    host = netrc_machine(address)
    pkg = package or PACKAGE_PLACEHOLDER
    plain_http = urlsplit(address).scheme == "http"
    pip_conf = f"[global]\nindex-url = {url}\n" + (f"trusted-host = {host}\n" if plain_http else "")
    uv_name = f'name = "{repo}"\n' if _UV_INDEX_NAME.match(repo) else ""
    result = [
        Section(
            "pip",
            "pip",
            "Install with the index URL, or make it pip's default for every install.",
            [
                Snippet("setup-pip-install", "Terminal: install a package", f"pip install --index-url {url} {pkg}"),
                Snippet(
                    "setup-pip-config", "Terminal: make it pip's default", f"pip config set global.index-url {url}"
                ),
                Snippet(
                    "setup-pip-conf",
                    "pip.conf",
                    pip_conf,
                    "In ~/.config/pip/pip.conf for you, /etc/pip.conf for everyone, or $VIRTUAL_ENV/pip.conf "
                    "for one virtual environment.",
                ),
            ],
        ),
        Section(
            "uv",
            "uv",
            "Install with the index URL, or make it uv's default index.",
            [
                Snippet(
                    "setup-uv-install", "Terminal: install a package with uv", f"uv pip install --index-url {url} {pkg}"
                ),
                Snippet(
                    "setup-uv-toml",
                    "uv.toml",
                    f'[[index]]\n{uv_name}url = "{url}"\ndefault = true\n',
                    "In ~/.config/uv/uv.toml for you, or /etc/uv/uv.toml for everyone on the machine.",
                ),
            ],
        ),
        Section(
            "requirements",
            "requirements.txt",
            "Put the index URL at the top of the file; pip and `uv pip install -r` both read it.",
            [Snippet("setup-requirements", "requirements.txt", f"--index-url {url}\n{pkg}\n")],
        ),
        Section(
            "pyproject",
            "pyproject.toml",
            "For a project managed with uv (`uv add`, `uv lock`, `uv sync`): the repository replaces PyPI as the "
            "default index.",
            [
                Snippet(
                    "setup-pyproject", "pyproject.toml", f'[[tool.uv.index]]\n{uv_name}url = "{url}"\ndefault = true\n'
                )
            ],
        ),
        Section(
            "uv-export",
            "requirements.txt from a uv project",
            "Posit Connect and Packyard install a deployment from its requirements.txt, not from uv.lock. With the "
            "pyproject.toml index above, this writes a requirements.txt that names the index URL on its first line.",
            [
                Snippet(
                    "setup-uv-export",
                    "Terminal: write requirements.txt",
                    "uv lock\nuv export --format requirements-txt --no-hashes --no-dev --no-emit-project "
                    "--emit-index-url --output-file requirements.txt",
                )
            ],
        ),
        Section(
            "environment",
            "Environment variables",
            "For a shell, a CI job or an editor such as Positron; pip reads PIP_INDEX_URL, uv reads UV_DEFAULT_INDEX "
            "(and UV_INDEX_URL, its older name).",
            [
                Snippet(
                    "setup-env",
                    "~/.bashrc or ~/.zshrc",
                    f'export PIP_INDEX_URL="{url}"\nexport UV_DEFAULT_INDEX="{url}"\nexport UV_INDEX_URL="{url}"\n',
                )
            ],
        ),
    ]
    if authenticated:
        result.insert(
            0,
            Section(
                "netrc",
                ".netrc",
                "This repository needs a token to read. pip and uv send the credentials from ~/.netrc; replace "
                f"{TOKEN_PLACEHOLDER} with a token that grants `repos:read` on `{repo}` (an administrator creates "
                f"one with `packyard token create --description 'read {repo}' --scope repos:read --repos {repo}`). "
                "The machine is the host "
                "alone, without scheme, port or path.",
                [
                    Snippet(
                        "setup-netrc", "~/.netrc", f"machine {host}\nlogin __token__\npassword {TOKEN_PLACEHOLDER}\n"
                    ),
                    Snippet(
                        "setup-netrc-chmod",
                        "Terminal: keep ~/.netrc private",
                        "chmod 600 ~/.netrc",
                        "The token is stored in plain text: keep the file readable by you alone.",
                    ),
                ],
            ),
        )
    return result


def r_repo_url(address: str, repo: str, snapshot: str) -> str:
    """`{address}/{repo}/{latest|YYYY-MM-DD}`: R adds `/src/contrib/` itself."""
    return f"{address.rstrip('/')}/{repo}/{snapshot}"


def r_sections(address: str, repo: str, snapshot: str, authenticated: bool, package: str = "") -> list[Section]:
    """R's `options(repos = ...)`, `.Rprofile`, and for an authenticated repository the seed's netrc and `.curlrc`."""
    url = r_repo_url(address, repo, snapshot)
    host = netrc_machine(address)
    pkg = package or PACKAGE_PLACEHOLDER
    name = repo.upper().replace("-", "_").replace(".", "_")
    method = 'options(download.file.method = "curl")\n' if authenticated else ""
    repos = f'options(repos = c({name} = "{url}"))\n'
    result = [
        Section(
            "r",
            "R",
            "Point `install.packages` at the repository for one session, or for every session in `.Rprofile`.",
            [
                Snippet("setup-r-install", "R console", f'{method}{repos}install.packages("{pkg}")'),
                Snippet(
                    "setup-r-profile",
                    "~/.Rprofile",
                    method + repos,
                    "In ~/.Rprofile for you, or R_HOME/etc/Rprofile.site for everyone on the machine. Add CRAN beside "
                    'it (`c(..., CRAN = "https://cloud.r-project.org")`) when packages depend on CRAN packages.',
                ),
            ],
        )
    ]
    if authenticated:
        result.insert(
            0,
            Section(
                "r-netrc",
                "netrc and .curlrc",
                "This repository needs a token to read. R downloads with the `curl` command "
                '(`options(download.file.method = "curl")`, below), which reads ~/.curlrc; that names the netrc file '
                f"holding the token. Replace {TOKEN_PLACEHOLDER} with a token that grants `repos:read` on `{repo}` "
                f"(an administrator creates one with `packyard token create --description 'read {repo}' --scope "
                f"repos:read --repos {repo}`). The machine is the host alone, without scheme, port or path.",
                [
                    Snippet(
                        "setup-r-netrc",
                        "/etc/netrc",
                        f"machine {host}\nlogin __token__\npassword {TOKEN_PLACEHOLDER}\n",
                    ),
                    Snippet(
                        "setup-r-curlrc",
                        "~/.curlrc",
                        "--netrc-file /etc/netrc\n",
                        "In the home folder of the user R runs as (for Posit Connect, its RunAs user). The token is "
                        "stored in plain text: keep /etc/netrc readable by that user alone.",
                    ),
                ],
            ),
        )
    return result
