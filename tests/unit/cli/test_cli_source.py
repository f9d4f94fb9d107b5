"""deploy --source says what it left out of the upload and why (#14 first hour 5), and the deploy's own
Score and settings files are not uploaded, so a static app cannot serve them (#14 first hour 10)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.unit.cli.conftest import Run
from tests.unit.client.fake_api import FakeApi
from yunzhou.client import pack_source


def _uploaded_names(fake: FakeApi) -> set[str]:
    (data,) = fake.artifacts.values()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return set(tar.getnames())


def _app_folder(score_file: Path) -> Path:
    """A static site beside its Score file, with a virtualenv, node_modules and caches in it."""
    app = score_file.parent
    (app / "yunzhou.yaml").write_text("replicas: 1\n")
    (app / "index.html").write_text("<p>hello</p>\n")
    for folder, files in ((".venv/lib", 3), ("node_modules/left-pad", 2), ("web/node_modules/x", 1)):
        (app / folder).mkdir(parents=True)
        for n in range(files):
            (app / folder / f"f{n}.js").write_bytes(bytes(1024 * 1024))
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0" * 10)
    return app


def test_source_says_in_one_line_what_it_left_out_and_why(shop: Run, fake: FakeApi, score_file: Path) -> None:
    app = _app_folder(score_file)
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--source", str(app))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Left out of the upload")]
    assert lines == [
        "Left out of the upload: "
        ".venv (1 folder, 3 files, 3.0 MiB), node_modules (2 folders, 3 files, 3.0 MiB): built for this "
        "machine; the app runs with what its target has installed; "
        "__pycache__ (1 folder, 1 file, 0.0 MiB): history and caches; "
        "score.yaml, yunzhou.yaml: the deploy's own Score and settings, which the app would otherwise serve "
        "(--include NAME uploads one anyway)"
    ]
    assert _uploaded_names(fake) == {"index.html", "web"}


def test_include_uploads_a_folder_or_platform_file_anyway(shop: Run, fake: FakeApi, score_file: Path) -> None:
    app = _app_folder(score_file)
    args = ["--source", str(app), "--include", "node_modules", "--include", "yunzhou.yaml"]
    result = shop("deploy", "shop/dev", "-f", str(score_file), *args)
    assert result.exit_code == 0, result.output
    names = _uploaded_names(fake)
    assert {"node_modules/left-pad/f0.js", "web/node_modules/x/f0.js", "yunzhou.yaml"} <= names
    assert not {"score.yaml", ".venv"} & names
    assert "node_modules" not in result.stderr.split("Left out of the upload")[1]


def test_a_score_file_elsewhere_in_the_source_is_left_out_too(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "orders.score.yaml").write_text("apiVersion: score.dev/v1b1\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    archive = pack_source(tmp_path, leave_out=[tmp_path / "deploy" / "orders.score.yaml"])
    with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
        assert tar.getnames() == ["app.py", "deploy"]
    assert [(item.name, item.why) for item in archive.left_out] == [("orders.score.yaml", "platform file")]


def test_nothing_left_out_says_nothing(shop: Run, score_file: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "main.py").write_text("print('orders')\n")
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--source", str(source))
    assert result.exit_code == 0, result.output
    assert "Left out" not in result.stderr
