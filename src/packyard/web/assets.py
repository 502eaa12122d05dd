"""The pages' CSS and JavaScript, with URLs that carry a hash of the content; `static_files.py` serves them."""

from __future__ import annotations

import hashlib
import mimetypes
from functools import cache
from pathlib import Path

FOLDER = Path(__file__).parent / "static"


class Asset:
    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.digest = hashlib.sha256(self.body).hexdigest()[:12]
        self.media_type = (mimetypes.guess_type(path.name)[0] or "application/octet-stream") + (
            "; charset=utf-8" if path.suffix in (".css", ".js") else ""
        )


@cache
def assets() -> dict[str, Asset]:
    return {path.name: Asset(path) for path in FOLDER.iterdir() if path.is_file()}


def static_url(name: str) -> str:
    """`/static/{name}?v={hash}`: a new file is a new URL, so browsers may keep each one forever."""
    return f"/static/{name}?v={assets()[name].digest}"
