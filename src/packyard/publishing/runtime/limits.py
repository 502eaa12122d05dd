"""Runtime settings of interactive content: each content's own values over the server's `[scheduler]` defaults.

Names, rules and error codes are Connect's (`PATCH /__api__/v1/content/{guid}`): null means the server default,
and a value over an administrator's cap is refused. `Limits` is what the supervisor runs a content with.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from packyard.config import SchedulerSettings
from packyard.publishing.errors import RuntimeSettingError
from packyard.publishing.models import Content

COUNTS = ("min_processes", "max_processes", "max_conns_per_process")
TIMEOUTS = ("idle_timeout", "init_timeout", "connection_timeout", "read_timeout")
# What one process may use, enforced by its sandbox; each capped by `[scheduler] max_<name>`.
RESOURCES = ("memory_limit", "process_limit", "open_files_limit")
FIELDS = (*COUNTS, "load_factor", *TIMEOUTS, *RESOURCES)
MAX_TIMEOUT = 2_592_000  # 30 days, Connect's bound
# Below these a Python app cannot start: the interpreter maps ~40 MB, each thread reserves an 8 MB stack.
RESOURCE_MINIMUM = {"memory_limit": 64 * 1024**2, "process_limit": 8, "open_files_limit": 32}


@dataclass(frozen=True)
class Limits:
    """The effective settings of one content (Connect's defaults here; the server's come from its config)."""

    min_processes: int = 0
    max_processes: int = 3
    max_conns_per_process: int = 20
    load_factor: float = 0.5
    idle_timeout: float = 5.0
    init_timeout: float = 60.0
    connection_timeout: float = 3600.0  # 0: never
    read_timeout: float = 3600.0  # 0: never
    memory_limit: int = 4 * 1024**3  # bytes of address space per process
    process_limit: int = 512  # processes and threads in one process's sandbox
    open_files_limit: int = 4096


def defaults(scheduler: SchedulerSettings) -> Limits:
    return Limits(**{f.name: getattr(scheduler, f.name) for f in fields(Limits)})


def effective(content: Content, scheduler: SchedulerSettings) -> Limits:
    """The content's values where set, else the server's; caps lowered since a value was stored still apply."""
    values = {name: _value(content, scheduler, name) for name in FIELDS}
    values["max_processes"] = min(values["max_processes"], scheduler.max_processes_limit)
    values["min_processes"] = min(values["min_processes"], scheduler.min_processes_limit, values["max_processes"])
    for name in RESOURCES:
        values[name] = min(values[name], getattr(scheduler, f"max_{name}"))
    return Limits(**values)


def described(content: Content, scheduler: SchedulerSettings) -> list[tuple[str, Any, str]]:
    """Each setting's effective value and where it comes from, for `packyard content runtime`."""
    limits = effective(content, scheduler)
    rows = []
    for name in FIELDS:
        own = getattr(content, name)
        source = "content" if own is not None else f"server default (`[scheduler] {name}`)"
        if own is not None and own != getattr(limits, name):
            source = f"content ({own:g}), capped by the server"
        rows.append((name, getattr(limits, name), source))
    return rows


def apply(content: Content, changes: dict[str, Any], scheduler: SchedulerSettings) -> bool:
    """Check `changes` (setting name -> value or None) and store them on the content; True when one changed.
    Raises RuntimeSettingError naming the first bad value, having changed nothing."""
    for name, value in changes.items():
        _check_one(name, value)
    merged = {name: changes.get(name, getattr(content, name)) for name in FIELDS}
    _check_together(merged, scheduler)
    changed = False
    for name, value in changes.items():
        if name == "load_factor" and value is not None:
            value = float(value)
        if getattr(content, name) != value:
            setattr(content, name, value)
            changed = True
    return changed


def parse(name: str, text: str) -> int | float | None:
    """A value typed at the command line: a number, or `default` for the server's."""
    if text.strip().lower() in ("default", "null", "none"):
        return None
    try:
        return float(text) if name == "load_factor" else int(text)
    except ValueError:
        kind = "a number from 0.0 to 1.0" if name == "load_factor" else "a whole number"
        raise RuntimeSettingError(
            f"`{name}` {text!r} is not {kind}; give one, or `default` for the server's.", field=name
        ) from None


def check_value(name: str, value: Any) -> None:
    """One setting's own rules (type and range), without the caps and min <= max that `apply` also checks."""
    _check_one(name, value)


def _value(content: Content, scheduler: SchedulerSettings, name: str) -> Any:
    own = getattr(content, name)
    return own if own is not None else getattr(scheduler, name)


def _check_one(name: str, value: Any) -> None:
    if value is None:
        return
    if name == "load_factor":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise RuntimeSettingError(
                f"`load_factor` is {value!r}; use a number from 0.0 to 1.0, or null for the server default.", 150, name
            )
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuntimeSettingError(
            f"`{name}` is {value!r}; use a whole number, or null for the server default.", field=name
        )
    if name in TIMEOUTS:
        low = 1 if name == "init_timeout" else 0
        if not low <= value <= MAX_TIMEOUT:
            raise RuntimeSettingError(
                f"`{name}` is {value}; use whole seconds from {low} to {MAX_TIMEOUT} (30 days)"
                + (", where 0 means never." if name in ("connection_timeout", "read_timeout") else "."),
                151,
                name,
            )
        return
    low = RESOURCE_MINIMUM.get(name, 0 if name == "min_processes" else 1)
    if value < low:
        raise RuntimeSettingError(
            f"`{name}` is {value}; use {low} or more, or null for the server default.", field=name
        )


def _check_together(merged: dict[str, Any], scheduler: SchedulerSettings) -> None:
    """Caps and min <= max, on the values the content would run with."""
    top = merged["max_processes"]
    if top is not None and top > scheduler.max_processes_limit:
        raise RuntimeSettingError(
            f"`max_processes` is {top}, over this server's limit of {scheduler.max_processes_limit} "
            "(`[scheduler] max_processes_limit`); use a smaller value, or ask an administrator to raise the limit.",
            113,
            "max_processes",
        )
    for name in RESOURCES:
        value, cap = merged[name], getattr(scheduler, f"max_{name}")
        if value is not None and value > cap:
            raise RuntimeSettingError(
                f"`{name}` is {value}, over this server's limit of {cap} (`[scheduler] max_{name}`); use a smaller "
                "value, or ask an administrator to raise the limit.",
                field=name,
            )
    low = merged["min_processes"]
    if low is not None and low > scheduler.min_processes_limit:
        raise RuntimeSettingError(
            f"`min_processes` is {low}, over this server's limit of {scheduler.min_processes_limit} "
            "(`[scheduler] min_processes_limit`); use a smaller value, or ask an administrator to raise the limit.",
            45,
            "min_processes",
        )
    low_value = low if low is not None else scheduler.min_processes
    top_value = top if top is not None else scheduler.max_processes
    if low_value > top_value:
        whose = "" if top is not None else ", the server default"
        raise RuntimeSettingError(
            f"`min_processes` ({low_value}) is more than `max_processes` ({top_value}{whose}); "
            "raise `max_processes` in the same change, or lower `min_processes`.",
            114,
            "min_processes",
        )
