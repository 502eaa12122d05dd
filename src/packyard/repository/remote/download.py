"""The remote CLI as `/__api__/download` serves it: `script.py`, with this server's version stamped in.

Every `?os=` gets the same script, which needs only Python 3.9+: `linux` and `darwin` (the default is `linux`)
get it as `rspm`, a `#!/usr/bin/env python3` file run as `./rspm add ...` once made executable; `windows` gets it
as `rspm.py`, run with the Python launcher (`py rspm.py add ...`), since Windows runs no shebang line and Packyard
builds no `.exe`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from packyard import __version__
from packyard.repository.errors import InvalidQuery

SCRIPT = Path(__file__).with_name("script.py")
FILENAMES = {"linux": "rspm", "darwin": "rspm", "windows": "rspm.py"}
_UNSTAMPED = 'VERSION = "unstamped"'


@dataclass(frozen=True)
class RemoteCli:
    filename: str
    body: bytes


@functools.cache
def _stamped() -> bytes:
    text = SCRIPT.read_text(encoding="utf-8")
    assert text.count(_UNSTAMPED) == 1, f"{SCRIPT} must hold `{_UNSTAMPED}` once, where the version goes"
    return text.replace(_UNSTAMPED, f"VERSION = {json.dumps(__version__)}").encode()


def remote_cli(os_name: str | None) -> RemoteCli:
    """The file for `?os=` (None when absent); an unknown value is an `InvalidQuery` naming the accepted ones."""
    os_name = os_name or "linux"
    filename = FILENAMES.get(os_name)
    if filename is None:
        accepted = ", ".join(f"`{name}`" for name in FILENAMES)
        raise InvalidQuery(
            f"Unknown `os` {os_name[:40]!r} in `/__api__/download?os=`; use one of {accepted} "
            "(every one gets the same Python 3.9+ script)."
        )
    return RemoteCli(filename, _stamped())
