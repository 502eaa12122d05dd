"""Request-shape, filename and digest rules, in Warehouse's order; each failure says what to fix."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from packyard.repository.errors import ActionGone, UploadRejected
from packyard.repository.names import is_safe_filename, is_valid_project_name, normalize
from packyard.repository.upload.multipart import UploadParts

FILETYPES = {"bdist_wheel": ".whl", "sdist": ".tar.gz"}
RETIRED_ACTIONS = {"submit", "submit_pkg_info", "doc_upload"}


@dataclass(frozen=True)
class Candidate:
    """What the uploader claims, checked for shape; the archive is checked against it next."""

    display_name: str
    name: str
    version: str
    filetype: str
    filename: str
    python_version: str


def check_shape(parts: UploadParts) -> Candidate:
    action = parts.first(":action")
    if action in RETIRED_ACTIONS:
        raise ActionGone("Project pre-registration is no longer required or supported, upload your files instead.")
    if action != "file_upload":
        raise UploadRejected(
            f"Unknown `:action` {action!r}; upload clients send `:action=file_upload`."
            if action
            else "Missing `:action` field; upload clients send `:action=file_upload`."
        )
    protocol = parts.first("protocol_version") or "1"
    if protocol != "1":
        raise UploadRejected(f"Unknown protocol version {protocol!r}; only `1` is supported.")
    if parts.content is None:
        raise UploadRejected("Upload payload does not have a file.")
    for field in ("metadata_version", "name", "version"):
        if not parts.first(field):
            raise UploadRejected(
                f"`{field}` is a required field; upload with twine, `uv publish` or `packyard add`, which send it."
            )
    name, version = parts.first("name"), parts.first("version")
    if not is_valid_project_name(name):
        raise UploadRejected(
            f"Invalid project name {name!r}: start and end with a letter or digit and use "
            "only letters, digits, `.`, `_` and `-`."
        )
    try:
        Version(version)
    except InvalidVersion as exc:
        raise UploadRejected(f"Invalid version {version!r}: versions follow PEP 440, e.g. `1.0.2`.") from exc
    filetype = parts.first("filetype")
    if filetype not in FILETYPES:
        raise UploadRejected(f"Unknown filetype {filetype!r}: use `bdist_wheel` or `sdist`.")
    python_version = parts.first("pyversion")
    if filetype == "sdist" and python_version not in ("", "source"):
        raise UploadRejected("Use 'source' as Python version for an sdist.")
    if not any(parts.first(d) for d in ("sha256_digest", "blake2_256_digest", "md5_digest")):
        raise UploadRejected("Include at least one message digest (`sha256_digest` is best).")
    return Candidate(
        display_name=name,
        name=normalize(name),
        version=version,
        filetype=filetype,
        filename=parts.content_filename,
        python_version=python_version or "source",
    )


def check_filename(c: Candidate) -> tuple[str, Version]:
    """The (normalized name, version) the filename encodes, which must match the form."""
    filename = c.filename
    if not is_safe_filename(filename):
        raise UploadRejected(
            f"Invalid filename {filename!r}: a distribution filename has no path, no `..` "
            "and only letters, digits, `.`, `_`, `-`, `+` and `!`."
        )
    extension = FILETYPES[c.filetype]
    if not filename.endswith(extension):
        if not filename.endswith((".whl", ".tar.gz")):
            raise UploadRejected(f"Invalid file extension in {filename!r}: use `.whl` or `.tar.gz`.")
        raise UploadRejected(
            f"Filename {filename!r} does not match filetype `{c.filetype}`, which needs a `{extension}` file."
        )
    try:
        if c.filetype == "bdist_wheel":
            file_name, file_version, _build, _tags = parse_wheel_filename(filename)
        else:
            file_name, file_version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise UploadRejected(f"Filename {filename!r} is not a valid distribution filename: {exc}.") from exc
    if normalize(file_name) != c.name:
        raise UploadRejected(
            f"Filename {filename!r} is for project `{file_name}`, but the upload says "
            f"`{c.display_name}`; upload the file for `{c.display_name}` or fix the name."
        )
    if file_version != Version(c.version):
        raise UploadRejected(
            f"Filename {filename!r} is for version `{file_version}`, but the upload says `{c.version}`."
        )
    return normalize(file_name), file_version


def check_digests(parts: UploadParts) -> None:
    staged = parts.content
    assert staged is not None
    computed = {
        "sha256_digest": staged.sha256.hexdigest(),
        "blake2_256_digest": staged.blake2_256.hexdigest(),
        "md5_digest": staged.md5.hexdigest(),
    }
    for field, actual in computed.items():
        claimed = parts.first(field).lower()
        if claimed and not hmac.compare_digest(claimed, actual):
            raise UploadRejected(
                "The digest supplied does not match a digest calculated from the uploaded "
                f"file (`{field}`); the file changed in transit or the client is broken, "
                "so upload it again."
            )


def check_signature(signature: bytes | None) -> bytes | None:
    if signature is None:
        return None
    if not signature.lstrip().startswith(b"-----BEGIN PGP SIGNATURE-----"):
        raise UploadRejected(
            "The `gpg_signature` is not an ASCII-armored OpenPGP signature; create it with "
            "`gpg --detach-sign --armor FILE`."
        )
    return signature
