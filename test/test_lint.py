"""The code conventions as tests: ruff and the module-size rule.

Ruff checks the rules of ruff.toml, as ament_flake8 and ament_pep257 would check them in
`colcon test`.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A module longer than this says at its top why it is not split (a line with "Long because").
MAX_LINES = 500


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, str(ROOT)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_ruff_check_is_clean():
    result = ruff("check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied():
    result = ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_long_modules_say_why():
    unexplained = []
    for path in sorted((ROOT / "ssma_ros").rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any("Long because" in line for line in lines[:30]):
            unexplained.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    assert not unexplained, f"split these modules or say why at their top: {unexplained}"
