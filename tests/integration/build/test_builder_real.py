"""The builder for real: the python and node stacks (build.stacks; cached in ~/.cache/yunzhou/stacks after
the first ~25 s build), runc containers, pip from PyPI and npm from its registry through the bridge's NAT.

Evidence that a warm rebuild runs no pip is the list of steps the runner ran and the log, never timing.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from yunzhou.build.builder import BuildCancelled, BuildFailed, BuildResult
from yunzhou.build.oci import ImageStore

from .conftest import Builder

DATA = Path(__file__).parents[2] / "data" / "build"
pytestmark = pytest.mark.slow


def _layer_names(store: ImageStore, digest: str) -> set[str]:
    with tarfile.open(store.blob_path(digest), "r:gz") as tar:
        return set(tar.getnames())


def _sbom_names(result: BuildResult) -> dict[str, str]:
    return {p["name"]: p["versionInfo"] for p in json.loads(result.sbom)["packages"][1:]}


def test_python_app_with_a_pypi_requirement_builds_reproducibly_and_reuses_its_dependency_layer(
    builder: Builder, tmp_path: Path
) -> None:
    source = tmp_path / "python-app"
    shutil.copytree(DATA / "python-app", source)
    first = builder.build(source)
    assert builder.runner.ran == ["pip install", "syntax check"]
    assert "Successfully installed six-1.16.0" in builder.lines
    assert (first.stack, first.stack_version, first.deps_cached) == ("python", "3.11", False)
    image = builder.store.image(first.digest)
    deps, app = image.layers[-2], image.layers[-1]
    assert "opt/venv/lib/python3.11/site-packages/six.py" in _layer_names(builder.store, deps.digest)
    assert _layer_names(builder.store, app.digest) == {"app", "app/app.py", "app/requirements.txt"}
    config = builder.store.config(first.digest)["config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["python3", "app.py"]
    assert "PORT=8080" in config["Env"]
    packages = _sbom_names(first)
    assert packages["six"] == "1.16.0"
    assert "python3" in packages  # a Debian package of the stack

    again = builder.build(source)
    assert again.digest == first.digest
    assert again.deps_cached
    assert builder.runner.ran == ["syntax check"]  # pip did not run
    assert any("pip not run" in line for line in builder.lines)
    assert not any("Successfully installed" in line for line in builder.lines)
    assert again.sbom == first.sbom

    (source / "app.py").write_text((source / "app.py").read_text() + "# changed\n")
    changed = builder.build(source)
    assert changed.deps_cached
    assert changed.digest != first.digest
    assert builder.store.image(changed.digest).layers[-2] == deps


def test_a_missing_package_fails_with_pips_own_message(builder: Builder, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text("yunzhou-no-such-package-xyz==1.0\n")
    with pytest.raises(BuildFailed) as caught:
        builder.build(tmp_path)
    message = caught.value.message
    assert "No matching distribution found for yunzhou-no-such-package-xyz==1.0" in message
    assert "Traceback" not in message
    assert builder.lines[-1] == "ERROR: No matching distribution found for yunzhou-no-such-package-xyz==1.0"


def test_a_syntax_error_fails_with_pythons_own_message(builder: Builder, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def broken(:\n    pass\n")
    with pytest.raises(BuildFailed) as caught:
        builder.build(tmp_path, stack="python")
    assert "SyntaxError" in caught.value.message
    assert "./app.py" in caught.value.message
    assert builder.runner.ran == ["syntax check"]


def test_the_time_limit_stops_pip_with_a_clear_message(builder: Builder, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.15.0\n")  # another key: nothing cached
    with pytest.raises(BuildFailed, match="time limit"):
        builder.build(tmp_path, time_limit=1.0)


def test_cancelling_stops_the_running_pip_container(builder: Builder, tmp_path: Path) -> None:
    # numpy's download and install take seconds: the cancel lands while pip runs in its container
    (tmp_path / "requirements.txt").write_text("numpy==1.26.4\n")
    with pytest.raises(BuildCancelled, match="cancelled during pip install"):
        builder.build(tmp_path, cancel_at="Collecting numpy")
    assert not any("Successfully installed" in line for line in builder.lines)
    assert builder.runner.ran == ["pip install"]
    assert builder.runc.list() == []


def test_node_app_with_a_lockfile_builds_with_npm_ci(builder: Builder, tmp_path: Path) -> None:
    source = tmp_path / "node-app"
    shutil.copytree(DATA / "node-app", source)
    result = builder.build(source)
    assert builder.runner.ran == ["npm install"]
    assert any("npm ci" in line for line in builder.lines)
    image = builder.store.image(result.digest)
    assert "app/node_modules/ms/package.json" in _layer_names(builder.store, image.layers[-2].digest)
    assert "app/server.js" in _layer_names(builder.store, image.layers[-1].digest)
    config = builder.store.config(result.digest)["config"]
    assert config["Cmd"] == ["node", "server.js"]
    assert "NODE_ENV=production" in config["Env"]
    assert _sbom_names(result)["ms"] == "2.1.3"
    assert builder.build(source).digest == result.digest
    assert builder.runner.ran == []


def test_the_built_python_image_serves_http_as_the_app_user_who_cannot_change_the_app(
    builder: Builder, tmp_path: Path
) -> None:
    source = tmp_path / "python-app"
    shutil.copytree(DATA / "python-app", source)
    (source / "app.py").chmod(0o600)  # an upload's odd mode: the image still lets the app user read it
    result = builder.build(source)
    with builder.serve(result.digest, tmp_path / "run") as (name, body):
        assert body("/") == "python ok six 1.16.0\n"
        assert builder.runc.exec(name, ["id", "-u"])[1].strip() == "10001"
        code, output = builder.runc.exec(name, ["python3", "-c", "open('/app/app.py', 'a')"])
        assert code != 0
        assert "Read-only file system" in output or "Permission denied" in output


def test_a_static_site_in_dist_is_served_by_the_nginx_stack(builder: Builder, tmp_path: Path) -> None:
    source = tmp_path / "site"
    (source / "dist").mkdir(parents=True)
    (source / "dist" / "index.html").write_text("<h1>static ok</h1>\n")
    (source / "README.md").write_text("not served\n")
    result = builder.build(source)
    assert (result.stack, result.deps_cached) == ("static", False)
    assert builder.runner.ran == []
    app = builder.store.image(result.digest).layers[-1]
    assert _layer_names(builder.store, app.digest) == {"app", "app/index.html"}
    with builder.serve(result.digest, tmp_path / "run") as (_, get):
        assert get("/") == "<h1>static ok</h1>\n"
