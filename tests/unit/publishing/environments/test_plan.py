"""A bundle's requirement files, parsed by `plan_install` (no server): lines that once sent the parser's patterns
into minutes of backtracking are read at once, and files past the bounds are refused with the file and line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from packyard.config import PythonSettings
from packyard.publishing.environments.install_hints import missing_packages
from packyard.publishing.environments.interpreters import Interpreter
from packyard.publishing.environments.plan import MAX_FILE_SIZE, MAX_LINE_LENGTH, MAX_LINES, InstallPlan, plan_install
from packyard.publishing.errors import EnvironmentBuildError

# Each of the old patterns (`(^|\s+)#.*$`, `\s+(?=--?[A-Za-z])`, `\s*=?\s*`) needed about a minute for one line
# with this many spaces; the test would hang for minutes if any came back.
SPACES = " " * 60_000
PYTHON = Interpreter("3.11.7", Path(sys.executable))


def plan(text: str, root: Path) -> InstallPlan:
    return plan_install(text, root, [], PythonSettings(prohibited=[]), PYTHON)


def test_long_runs_of_spaces_are_read_at_once(tmp_path: Path) -> None:
    (tmp_path / "more.txt").write_text("gamma\n")
    text = f"alpha{SPACES}==1.0\nbeta>=2{SPACES}--hash=sha256:{'0' * 64}\ndelta{SPACES}x\n"
    with pytest.raises(EnvironmentBuildError) as refused:
        plan(text, tmp_path)
    assert str(refused.value).startswith("Line 3 of `requirements.txt`: `delta x` is not a requirement (")
    parsed = plan(f"alpha{SPACES}==1.0\nbeta>=2{SPACES}--hash=sha256:{'0' * 64}\n-r{SPACES}more.txt\n", tmp_path)
    assert parsed.requirements == ["alpha==1.0", f"beta>=2 --hash=sha256:{'0' * 64}", "gamma"]
    assert plan(f"# {SPACES}x\nalpha{SPACES}# x\n{SPACES}#\n", tmp_path).requirements == ["alpha"]


def test_a_line_past_the_length_limit_names_its_file_and_line(tmp_path: Path) -> None:
    line = "flask" + " " * 100_000 + "==3.0"
    with pytest.raises(EnvironmentBuildError) as refused:
        plan(f"alpha\n{line}\n", tmp_path)
    assert str(refused.value) == (
        f"Line 2 of `requirements.txt` is longer than {MAX_LINE_LENGTH:,} characters, the limit for one requirement "
        "(it starts `flask ==3.0`); write one requirement per line, without long runs of spaces."
    )
    # Continuations count together: the logical line is what is bounded.
    with pytest.raises(EnvironmentBuildError, match="^Line 1 of `requirements.txt` is longer than"):
        plan("alpha \\\n" * (MAX_LINE_LENGTH // 4) + "==1.0\n", tmp_path)


def test_too_many_lines_or_bytes_are_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("\n" * (MAX_LINES + 1))
    with pytest.raises(EnvironmentBuildError) as refused:
        plan("alpha\n-r big.txt\n", tmp_path)
    assert str(refused.value).startswith(f"`big.txt` has more than {MAX_LINES:,} lines, the limit")
    (tmp_path / "huge.txt").write_bytes(b"#" * (MAX_FILE_SIZE + 1))
    with pytest.raises(EnvironmentBuildError) as refused:
        plan("-c huge.txt\n", tmp_path)
    assert str(refused.value).startswith(f"`huge.txt` is {MAX_FILE_SIZE + 1:,} bytes, over the limit of 8 MiB")


def test_a_deep_chain_of_includes_is_refused(tmp_path: Path) -> None:
    for n in range(30):
        (tmp_path / f"r{n}.txt").write_text(f"-r r{n + 1}.txt\n")
    (tmp_path / "r30.txt").write_text("alpha\n")
    with pytest.raises(
        EnvironmentBuildError, match=r"^Line 1 of `r19.txt`: `-r r20.txt` goes past 20 levels of files including files"
    ):
        plan("-r r0.txt\n", tmp_path)


def test_missing_names_are_read_from_uv_in_linear_time() -> None:
    said = "Because fastapi was not found in the package registry and you require fastapi==9, we can't continue."
    noise = "a." * 60_000 + " was not found in the provided package locations"
    assert missing_packages([said, noise, "..x_y-z was not found in the package registry"]) == [
        "fastapi",
        "a." * 60_000,
        "x_y-z",
    ]
