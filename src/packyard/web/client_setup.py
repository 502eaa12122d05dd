"""What the setup page tells clients: a repository's index URL for `latest` or a date, and the pip, uv,
requirements.txt, pyproject.toml, environment and `.netrc` text that points each client at it; when the server
serves HTTPS itself, how each client trusts its certificate authority."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_PLACEHOLDER = "YOUR_TOKEN"
PACKAGE_PLACEHOLDER = "PACKAGE"
# Where the snippets say the certificate authority's PEM file is: Packyard cannot know the client's path.
CA_PLACEHOLDER = "/path/to/ca.pem"
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


def cacert_option(tls: bool) -> str:
    """rsconnect's ` --cacert` for `rsconnect add` when the server serves HTTPS itself (maybe an internal CA)."""
    return f" --cacert {CA_PLACEHOLDER}" if tls else ""


def tls_section(address: str, url: str, pkg: str) -> Section:
    """How pip, uv, twine, rsconnect and R trust the authority that issued the server's certificate."""
    ca = CA_PLACEHOLDER
    return Section(
        "tls",
        "HTTPS with an internal certificate authority",
        f"This server serves HTTPS with its own certificate. If an internal certificate authority issued it, "
        f"clients must trust that authority, or they fail with errors such as uv's `invalid peer certificate: "
        f"UnknownIssuer`. Ask your administrator for its certificate (a PEM file; {ca} below).",
        [
            Snippet(
                "setup-tls-system-store",
                "Terminal: add the authority to the system's store (Debian, Ubuntu)",
                f"sudo cp {ca} /usr/local/share/ca-certificates/internal-ca.crt\nsudo update-ca-certificates",
                "uv with UV_NATIVE_TLS and R read this store; pip, twine and rsconnect carry bundles of their own "
                "and need the settings below.",
            ),
            Snippet(
                "setup-tls-uv",
                "uv: use the system's store (uv has its own by default)",
                "export UV_NATIVE_TLS=true\n"
                f"# or, for one command:\nuv pip install --native-tls --index-url {url} {pkg}",
                f"Without the system's store, `export SSL_CERT_FILE={ca}` makes uv trust that file instead.",
            ),
            Snippet(
                "setup-tls-pip",
                "pip.conf",
                f"[global]\ncert = {ca}\n",
                f"Or `export PIP_CERT={ca}`, or `pip install --cert {ca} ...` for one command.",
            ),
            Snippet(
                "setup-tls-twine",
                "Terminal: twine",
                f"export REQUESTS_CA_BUNDLE={ca}",
                f"Or `twine upload --cert {ca} ...` for one command.",
            ),
            Snippet(
                "setup-tls-rsconnect",
                "Terminal: rsconnect",
                f"rsconnect add --server {address.rstrip('/')} --name packyard --api-key KEY --cacert {ca}",
                "rsconnect keeps the path with the server's entry and uses it for every deploy.",
            ),
            Snippet(
                "setup-tls-r",
                "~/.Renviron",
                f"CURL_CA_BUNDLE={ca}\n",
                "R's libcurl (`install.packages`, `download.file`) reads it; in a session, "
                f'`Sys.setenv(CURL_CA_BUNDLE = "{ca}")` before installing.',
            ),
        ],
    )


def sections(
    address: str, repo: str, snapshot: str, authenticated: bool, package: str = "", tls: bool = False
) -> list[Section]:
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
    if tls:
        result.insert(0, tls_section(address, url, pkg))
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


def r_sections(
    address: str, repo: str, snapshot: str, authenticated: bool, package: str = "", tls: bool = False
) -> list[Section]:
    """R's `options(repos = ...)`, `.Rprofile`, for an authenticated repository the seed's netrc and `.curlrc`, and
    with HTTPS R's CA setting."""
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
    if tls:  # of the HTTPS settings, R's alone (libcurl and the curl command both read CURL_CA_BUNDLE)
        https = tls_section(address, url, pkg)
        r_only = [snippet for snippet in https.snippets if snippet.id == "setup-tls-r"]
        result.insert(0, Section(https.id, https.title, https.intro, r_only))
    return result
