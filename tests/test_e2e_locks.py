"""Every kind of lock builds an image that runs, and a lock whose hash is wrong builds nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jib.api import build
from jib.config import Overrides
from jib.errors import JibError

pytestmark = pytest.mark.e2e

LOCKS = Path(__file__).parent / "projects" / "locks" / "app"
MAIN = b"""\
import markupsafe, six
print(markupsafe.escape("<lock>"), six.__name__, markupsafe._speedups.__file__.rsplit("/", 1)[1])
"""


def _project(tmp_path: Path, lock: str) -> Path:
    project = tmp_path / "lockdemo"
    shutil.copytree(LOCKS, project)
    (project / "src" / "lockdemo" / "__main__.py").write_bytes(MAIN)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'\n[tool.jib.python]\nlock = "{lock}"\n')
    return project


@pytest.mark.parametrize("lock", ["poetry.lock", "pylock.toml", "uv.lock", "requirements.txt"])
def test_each_lock_kind_gives_a_running_image(
    tmp_path: Path, lock: str, base_image_tar: Path, podman: object
) -> None:
    project = _project(tmp_path, lock)
    ref = f"example.com/locks/{lock.replace('.', '-')}:1"
    result = build(
        project,
        ("tar",),
        overrides=Overrides(from_image=f"tar://{base_image_tar}", to_image=ref),
        environ={"JIB_CACHE_DIR": str(tmp_path / "cache")},
        report=lambda line: None,
    )
    assert [o.name for o in result.layers] == ["dependencies", "application"]
    tar = project / "dist" / "lockdemo-0.1.0-image.tar"
    assert podman.load(tar) == [ref]  # type: ignore[attr-defined]
    output = podman.run(ref).stdout.split()  # type: ignore[attr-defined]
    assert output[:2] == ["&lt;lock&gt;", "six"]
    assert output[2].endswith("x86_64-linux-gnu.so")


def test_a_lock_hash_that_does_not_match_fails_the_build(
    tmp_path: Path, base_image_tar: Path
) -> None:
    project = _project(tmp_path, "requirements.txt")
    requirements = project / "requirements.txt"
    text = requirements.read_text()
    marker = "six==1.17.0"
    at = text.index("--hash=sha256:", text.index(marker)) + len("--hash=sha256:")
    requirements.write_text(text[:at] + "0" * 64 + text[at + 64 :])
    with pytest.raises(JibError) as err:
        build(
            project,
            ("tar",),
            overrides=Overrides(from_image=f"tar://{base_image_tar}", to_image="x/y:1"),
            environ={"JIB_CACHE_DIR": str(tmp_path / "cache")},
            report=lambda line: None,
        )
    message = str(err.value)
    assert "\n" not in message and "six" in message and "0" * 64 in message
    assert not (project / "dist").exists() or not list((project / "dist").glob("*.tar"))
