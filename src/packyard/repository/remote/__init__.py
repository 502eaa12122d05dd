"""The remote CLI: `script.py` runs on an uploader's machine; `download.py` serves it at `/__api__/download`."""
