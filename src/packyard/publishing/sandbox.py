"""Running a publisher's code (apps, renders, environment builds) inside a bubblewrap sandbox.

Inside: the system's /usr, a few files of /etc, the mounts the caller names (read-only unless said), a private
/tmp and HOME, /proc of its own PID namespace, and only the variables the caller passes. Nothing of the data
directory, the server's configuration or environment, or any other content.

When the server runs as root, the code runs as `[applications] run_as`: bubblewrap runs as root so that it can
mount what only root can read, `setpriv` then drops to that user, and a second, unprivileged bubblewrap gives the
code a user namespace of its own. Linux counts RLIMIT_NPROC per user namespace, so a fork bomb exhausts only its
own sandbox's allowance, not the allowance every content shares as the same user.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packyard.publishing.errors import SandboxError

log = logging.getLogger("packyard.sandbox")

MODES = ("on", "off")
HOME = "/home/content"
# What of /etc a Python program needs: name resolution, TLS roots, time zone, user names, the dynamic linker.
# Never all of /etc: it holds other services' configuration.
ETC = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
)
PROBE_TIMEOUT = 30


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str = ""  # the path inside; the source's own path when empty
    writable: bool = False

    @property
    def inside(self) -> str:
        return self.target or str(self.source)


@dataclass(frozen=True)
class Quota:
    """Per-process resource limits (0: none)."""

    memory: int = 0  # bytes of address space, per process
    processes: int = 0  # processes and threads in one sandbox
    open_files: int = 0  # per process
    tmp: int = 0  # bytes of the private /tmp and HOME, each (they are memory)


class Sandbox:
    """Turns a command into one that runs sandboxed; `problem` says why content cannot run when it cannot."""

    def __init__(self, mode: str, run_as: str) -> None:
        if mode not in MODES:
            raise SandboxError(f'`[applications] sandbox` is {mode!r}; use "on" or "off".')
        self.enabled = mode == "on"
        self.run_as = run_as
        self.problem: str | None = None
        self.user: tuple[int, int] | None = None  # run_as's uid and gid, when the server runs as root
        self._tools: dict[str, str] = {}

    def probe(self) -> None:
        """Find bubblewrap and the run_as user and start one sandbox; remember what stopped it, if anything."""
        if not self.enabled:
            return
        try:
            for tool in ("bwrap", "setpriv", "prlimit"):
                found = shutil.which(tool, path=f"/usr/bin:/bin:/usr/sbin:{os.environ.get('PATH', '')}")
                if found is None:
                    package = "bubblewrap" if tool == "bwrap" else "util-linux"
                    raise SandboxError(f"`{tool}` is not installed (Debian's package `{package}`)")
                self._tools[tool] = found
            if os.geteuid() == 0:
                self.user = _ensure_user(self.run_as)
            result = subprocess.run(
                self.command(["/bin/true"], mounts=[], cwd="/", quota=Quota()),
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT,
                env={"PATH": "/usr/bin:/bin"},
            )
            if result.returncode != 0:
                said = (result.stderr.strip() or f"exit code {result.returncode}").splitlines()[-1]
                raise SandboxError(f"bubblewrap could not start a sandbox ({said}); the kernel may refuse namespaces")
        except (SandboxError, OSError, subprocess.SubprocessError) as exc:
            self.problem = str(exc).rstrip(".")

    def check(self) -> None:
        """Raise SandboxError when content must not run: sandboxing is on and does not work here."""
        if self.enabled and self.problem:
            raise SandboxError(refusal(self.problem))

    def command(self, argv: list[str], *, mounts: Iterable[Mount], cwd: str, quota: Quota) -> list[str]:
        """`argv` wrapped to run in a sandbox that sees `mounts`, starting in `cwd` (a path inside)."""
        limits = _prlimit(self._tools.get("prlimit", "prlimit"), quota, processes=self.enabled)
        if not self.enabled:
            return [*limits, *argv] if limits else argv
        bwrap = self._tools.get("bwrap", "bwrap")
        outer = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        outer += ["--hostname", "content"]
        outer += _system_mounts()
        made: set[str] = {"/", "/usr", "/etc", "/proc", "/dev", "/tmp", "/run", "/home", HOME}
        tmp_size = ["--size", str(quota.tmp)] if quota.tmp else []
        outer += ["--perms", "1777", *tmp_size, "--tmpfs", "/tmp", "--perms", "0755", "--dir", "/home"]
        outer += ["--perms", "1777", *tmp_size, "--tmpfs", HOME]
        extra = [Path(self._tools["bwrap"])] if self.user and not self._tools["bwrap"].startswith("/usr/") else []
        for mount in [*mounts, *(Mount(p) for p in extra)]:
            outer += _parents(mount.inside, made)
            outer += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.inside]
        outer += ["--chdir", cwd]
        if self.user is None:
            # Not root: bubblewrap itself makes an unprivileged user namespace.
            return [*outer[:1], "--unshare-user", "--disable-userns", *outer[1:], "--", *limits, *argv]
        uid, gid = self.user
        outer += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
        drop = [self._tools["setpriv"], f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all", "--"]
        # `--dev-bind`: the outer sandbox's /dev holds only the safe devices, and a plain bind would disable them.
        inner = [bwrap, "--unshare-user", "--disable-userns", "--die-with-parent", "--dev-bind", "/", "/"]
        inner += ["--chdir", cwd, "--"]
        return [*outer, *drop, *inner, *limits, *argv]

    def environ(self, python: Path | None) -> dict[str, str]:
        """What every sandboxed program starts with: its environment's scripts first on PATH, a private HOME.
        Nothing of the server's own variables, which hold secrets."""
        system = "/usr/local/bin:/usr/bin:/bin"
        return {
            "PATH": f"{python.parent}{os.pathsep}{system}" if python is not None else system,
            "HOME": HOME if self.enabled else os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": "/tmp" if self.enabled else tempfile.gettempdir(),
            "PYTHONUNBUFFERED": "1",
        }

    def give(self, path: Path) -> None:
        """Make a folder the sandboxed code must write (an environment being built, a render's staging) its own."""
        if self.enabled and self.user is not None:
            uid, gid = self.user
            os.chown(path, uid, gid)
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    with contextlib.suppress(FileNotFoundError):
                        os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)

    def status(self) -> str:
        """One line for the start banner and the admin pages."""
        if not self.enabled:
            return (
                'Content is NOT sandboxed (`[applications] sandbox = "off"`): every publisher\'s code runs as the '
                "server's user and can read its secrets and database."
            )
        if self.problem:
            return refusal(self.problem)
        who = f"as `{self.run_as}`" if self.user else "as the server's user, in a user namespace"
        return f"Content runs sandboxed by bubblewrap, {who}."


def refusal(problem: str) -> str:
    return (
        f"Packyard cannot sandbox content on this host: {problem}. No content runs until it can: install "
        'bubblewrap (`apt-get install bubblewrap`), or set `[applications] sandbox = "off"` in packyard.toml '
        "if every publisher is trusted with the whole server."
    )


def _system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "0755", "--dir", "/run"]
    return args


def _parents(inside: str, made: set[str]) -> list[str]:
    """`--dir` for each folder above a mount point: bubblewrap would otherwise create them readable by root only."""
    args: list[str] = []
    for parent in reversed(Path(inside).parents):
        text = str(parent)
        if text not in made:
            made.add(text)
            args += ["--perms", "0755", "--dir", text]
    made.add(inside)
    return args


def _prlimit(tool: str, quota: Quota, *, processes: bool) -> list[str]:
    limits = []
    wanted = [("as", resource.RLIMIT_AS, quota.memory), ("nofile", resource.RLIMIT_NOFILE, quota.open_files)]
    # Outside a sandbox the count would include every process of the server's user.
    if processes:
        wanted.append(("nproc", resource.RLIMIT_NPROC, quota.processes))
    for name, which, value in wanted:
        if value:
            # Never above the server's own hard limit, which only root could raise.
            hard = resource.getrlimit(which)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            limits.append(f"--{name}={value}:{value}")
    return [tool, *limits, "--"] if limits else []


def _ensure_user(name: str) -> tuple[int, int]:
    """The uid and gid of `name`, created as a system user without a home or shell when missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd", path="/usr/sbin:/sbin:/usr/bin")
        if useradd is None:
            raise SandboxError(
                f"the user `{name}` (`[applications] run_as`) does not exist and `useradd` is not here to create it; "
                f"create it, e.g. `adduser --system --group {name}`"
            ) from None
        result = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
             "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
        )  # fmt: skip
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise SandboxError(f"could not create the user `{name}`: {result.stderr.strip()}") from None
        log.warning("Created the system user %s, which content runs as ([applications] run_as).", name)
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise SandboxError(f"`[applications] run_as` is `{name}`, which is root; name an unprivileged user")
    return entry.pw_uid, entry.pw_gid


def python_mounts(python: Path) -> list[Mount]:
    """Read-only mounts for a program run by `python`: its environment, and the interpreter that one is made from."""
    mounts: list[Mount] = []
    env = python.parent.parent
    home: Path | None = None
    config = env / "pyvenv.cfg"
    if config.is_file():
        mounts.append(Mount(env))
        for line in config.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                home = Path(value.strip())
    interpreter = (home / python.name) if home else python
    with contextlib.suppress(OSError):
        interpreter = interpreter.resolve()
    prefix = interpreter.parent.parent if interpreter.parent.name == "bin" else interpreter.parent
    if not _covered(prefix):
        mounts.append(Mount(prefix))
    return mounts


def _covered(path: Path) -> bool:
    """Whether the system mounts already show `path` (/usr and what links into it)."""
    text = str(path)
    return text == "/usr" or text.startswith("/usr/") or text in ("/", "/bin", "/lib", "/lib64")
