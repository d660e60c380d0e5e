"""The sdist and the wheel build, install into a fresh venv, and run there.

Offline: `python -m build --no-isolation` uses the setuptools of the test venv (pinned in
the "test" extra), and the packages are installed with --no-deps. The fresh venvs see the
test venv's site-packages *after* their own (a .pth line), so the runtime dependencies
resolve while glancesync itself, its console script and its data files come only from the
artifact under test; the metadata's Requires-Dist is compared with pyproject.toml.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [
    "glancesync.conf",
    "glancesync.cron",
    "glancesync.service",
    "glancesync.timer",
    "glancesync-api.service",
]
# Never copied into the build tree: artifacts of the developer's own work.
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".testbed",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "sync_*",
    "backup_glance_*",
)


def run(*cmd: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build from a clean copy of the tree (no stale egg-info, nothing written in ROOT)."""
    src = tmp_path_factory.mktemp("src") / "glancesync"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    out = tmp_path_factory.mktemp("dist")
    # Default mode: the sdist from the tree, then the wheel from the unpacked sdist, which
    # proves the sdist is complete.
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, src)
    (sdist,) = out.glob("glancesync-*.tar.gz")
    (wheel,) = out.glob("glancesync-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def fresh_venv(path: Path) -> Path:
    """A venv without pip that sees the test venv's packages after its own."""
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ).stdout.strip()
    Path(purelib, "zz_test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def declared_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["dependencies"]


@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_installs_and_runs(kind: str, dists: dict[str, Path], tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    python = fresh_venv(env_dir)
    # --ignore-installed: the test venv's editable glancesync is visible through the .pth
    # and must be neither uninstalled nor taken as already satisfying the requirement.
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--ignore-installed",
        "--disable-pip-version-check",
        dists[kind],
    )
    # glancesync is the installed copy, not the source tree
    location = run(
        python, "-c", "import glancesync; print(glancesync.__file__)", cwd=tmp_path
    ).stdout.strip()
    assert Path(location).is_relative_to(env_dir), location

    version = run(env_dir / "bin" / "glancesync", "--version", cwd=tmp_path).stdout
    assert version.strip() == f"glancesync {_version()}"
    helptext = run(python, "-m", "glancesync", "--help", cwd=tmp_path).stdout
    assert helptext.startswith("usage: glancesync")
    assert "--show-status" in helptext

    shared = env_dir / "share" / "glancesync"
    for name in SAMPLES:
        installed = shared / name
        assert installed.is_file(), f"{installed} not installed"
        assert installed.read_bytes() == (ROOT / "etc" / name).read_bytes()

    metadata = run(
        python,
        "-c",
        "import importlib.metadata as m; print(m.distribution('glancesync').read_text('METADATA'))",
        cwd=tmp_path,
    ).stdout
    message = email.parser.Parser().parsestr(metadata)
    assert message["License-Expression"] == "Apache-2.0"
    runtime = [r for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert sorted(runtime) == sorted(d.replace(" ", "") for d in declared_dependencies())
    # Real work with the installed package: an offline dry run of the bundled example
    work = tmp_path / "regions"
    work.mkdir()
    for csv_file in (ROOT / "examples" / "federation").glob("*.csv"):
        shutil.copy(csv_file, work)
    proc = subprocess.run(
        [
            env_dir / "bin" / "glancesync",
            "--config-file",
            ROOT / "examples" / "federation" / "glancesync.conf",
            "--offline",
            work,
            "--show-status",
            "master:",
            "other:",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert "pending_upload," in proc.stdout


def test_sdist_contents(dists: dict[str, Path]) -> None:
    import tarfile

    with tarfile.open(dists["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in [
        "LICENSE",
        "README.rst",
        "pyproject.toml",
        "glancesync/__main__.py",
        *(f"etc/{n}" for n in SAMPLES),
    ]:
        assert needed in names, f"{needed} missing from the sdist"
    assert "setup.py" not in names


def _version() -> str:
    namespace: dict[str, str] = {}
    exec((ROOT / "glancesync" / "__init__.py").read_text(encoding="utf-8"), namespace)
    return namespace["__version__"]
