"""`pip install ./clients/python` in a fresh virtual environment: the package builds
(hatchling, from the package registry) and works on its own, without the server's code."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from mgc_servers import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PACKAGE = Path(__file__).resolve().parents[1]
OFFLINE = (
    "Temporary failure in name resolution",
    "Network is unreachable",
    "NewConnectionError",
    "Failed to establish a new connection",
    "No matching distribution found for hatchling",
)
"""pip's words when it cannot reach the registry for the build backend."""


def test_installs_in_a_fresh_venv(tmp_path: Path, server: Server, key: str) -> None:
    source = tmp_path / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    # Nothing of this checkout on the path: only what pip installed.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    if done.returncode != 0 and any(marker in done.stderr for marker in OFFLINE):
        pytest.skip(f"the package registry is unreachable: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr

    check = (
        "import pathlib, mediagate_client as m; "
        "assert (pathlib.Path(m.__file__).parent / 'py.typed').exists(); "
        "import importlib.util as u; assert u.find_spec('mediagate') is None; "
        "print(m.__version__)"
    )
    imported = subprocess.run(
        [bin_dir / "python", "-c", check],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "0.1.0"

    listed = subprocess.run(
        [
            bin_dir / "mediagate-client",
            "--base-url",
            server.base,
            "--api-key",
            key,
            "tasks",
            "list",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("TASK")
    assert sys.prefix != str(env_dir)
