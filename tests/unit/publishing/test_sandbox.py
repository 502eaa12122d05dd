"""The sandbox's command line and mounts; tests/test_hostile_content.py shows what a real one hides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from packyard.publishing.errors import SandboxError
from packyard.publishing.sandbox import HOME, Mount, Quota, Sandbox, python_mounts


def sandbox(mode: str = "on") -> Sandbox:
    made = Sandbox(mode, "packyard-content")
    made.probe()
    return made


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(SandboxError, match=r'`\[applications\] sandbox` is \'maybe\'; use "on" or "off"'):
        Sandbox("maybe", "x")


def test_off_runs_the_command_itself_with_memory_and_file_limits_only() -> None:
    command = sandbox("off").command(["python", "-V"], mounts=[], cwd="/", quota=Quota(2**30, 64, 256))
    assert command == ["prlimit", f"--as={2**30}:{2**30}", "--nofile=256:256", "--", "python", "-V"]


def test_a_sandboxed_command_sees_its_mounts_and_runs_with_its_limits(tmp_path: Path) -> None:
    box = sandbox()
    box.check()
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "app.txt").write_text("mine")
    (tmp_path / "secret").write_text("not mine")
    script = (
        "import os, resource; "
        "print(open('app.txt').read(), os.listdir('..'), resource.getrlimit(resource.RLIMIT_NPROC)[0])"
    )
    mounts = [Mount(tmp_path / "bundle"), *python_mounts(Path(sys.executable))]
    quota = Quota(2**31, 99, 512)
    command = box.command([sys.executable, "-c", script], mounts=mounts, cwd=str(tmp_path / "bundle"), quota=quota)
    result = subprocess.run(command, capture_output=True, text=True, env=box.environ(Path(sys.executable)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mine", "['bundle']", "99"]
    if os.geteuid() == 0:
        assert "setpriv" in " ".join(command)


def test_environ_is_a_minimal_base_with_a_private_home() -> None:
    env = sandbox().environ(Path("/envs/abc/bin/python"))
    assert env["HOME"] == HOME
    assert env["PATH"].startswith("/envs/abc/bin:")
    assert set(env) == {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONUNBUFFERED"}


def test_python_mounts_show_the_environment_and_the_interpreter_it_was_made_from(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text(f"home = {tmp_path / 'base' / 'bin'}\n")
    (env / "bin" / "python").touch()
    assert python_mounts(env / "bin" / "python") == [Mount(env), Mount(tmp_path / "base")]
    assert python_mounts(Path("/usr/bin/python3")) == []
