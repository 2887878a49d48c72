"""The Python examples of README.md and docs/api.md run as written against a real server (with API
keys), in a folder holding the images they name. Only the addresses change: the test server listens on
free ports instead of 9998/18091, and the admin key replaces ``"..."``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Running
from tests.integration.test_client_cli import cserver  # noqa: F401  (a server with API keys)
from tests.integration.test_gallery_api import ADMIN, people

ROOT = Path(__file__).resolve().parents[2]


def snippets() -> list[tuple[str, str]]:
    readme = re.findall(r"python - <<'PY'\n(.*?)\nPY\n", (ROOT / "README.md").read_text(), re.S)
    api = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)
    found = [(f"README.md #{i}", c) for i, c in enumerate(readme)]
    return found + [(f"docs/api.md #{i}", c) for i, c in enumerate(api)]


def test_the_documents_have_python_examples() -> None:
    names = [n for n, _ in snippets()]
    assert len([n for n in names if n.startswith("README")]) >= 1
    assert len([n for n in names if n.startswith("docs/api.md")]) >= 2


@pytest.mark.parametrize(("name", "code"), snippets(), ids=[n for n, _ in snippets()])
def test_example_runs_as_written(
    cserver: Running,  # noqa: F811
    lfw_dir: Path,
    tmp_path: Path,
    name: str,
    code: str,
) -> None:
    (_, ada_photos), (_, other) = people(lfw_dir, 2, 3).items()
    for target, src in (
        ("ada1.jpg", ada_photos[0]),
        ("ada2.jpg", ada_photos[1]),
        ("group.jpg", ada_photos[2]),
        ("face.jpg", other[0]),
    ):
        shutil.copy(src, tmp_path / target)
    code = code.replace("http://127.0.0.1:9998", cserver.url).replace("127.0.0.1:18091", cserver.grpc)
    code = code.replace('api_key="..."', f'api_key="{ADMIN}"')
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{name}:\n{code}\n{done.stderr}"
    if "identify" in code:  # group.jpg is another photo of ada: found, by id
        assert done.stdout.strip().endswith(" ada"), done.stdout
    elif "ArcFace/prediction" in code:
        assert done.stdout.startswith("0 array([["), done.stdout
    else:
        assert "'box'" in done.stdout and "'landmarks'" in done.stdout, done.stdout
