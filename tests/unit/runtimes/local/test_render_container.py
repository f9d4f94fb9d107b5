"""A release with an image renders to a container plan: the image's config under the Score's overrides."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.runtimes.local.render import render
from yunzhou.runtimes.local.spec import FileMount, VolumeMount
from yunzhou.runtimes.protocol import AppIntent

IMAGE = "shop/web@sha256:" + "a" * 64
CONFIG = {
    "config": {
        "Entrypoint": ["/app/.venv/bin/python"],
        "Cmd": ["app.py"],
        "Env": ["PATH=/app/.venv/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
        "User": "10001:10001",
        "WorkingDir": "/app",
    }
}


def intent(
    container: dict[str, Any], *, resources: dict[str, Any] | None = None, image: str | None = IMAGE
) -> AppIntent:
    score: dict[str, Any] = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"main": {"image": ".", **container}},
    }
    if resources:
        score["resources"] = resources
    return AppIntent(
        app_id=1,
        address="shop/dev/web",
        release=3,
        score=score,
        settings={},
        artifact=None,
        artifact_digest=None,
        replicas=1,
        removing=False,
        routes=(),
        variables={"PLATFORM": "yes"},
        image=image,
    )


def test_the_image_config_runs_when_the_score_says_nothing() -> None:
    r = render(intent({"variables": {"GREETING": "hi"}}), {"YUNZHOU_ROUTER": "10.213.0.1:8080"}, CONFIG)
    assert r.argv == ("/app/.venv/bin/python", "app.py")
    assert r.container is not None
    assert r.container.image == IMAGE
    assert r.container.cwd == "/app"
    assert r.env["PATH"] == "/app/.venv/bin:/usr/bin:/bin"
    assert r.env["LANG"] == "C.UTF-8"
    assert r.env["GREETING"] == "hi"
    assert r.env["PLATFORM"] == "yes"
    assert r.env["YUNZHOU_ROUTER"] == "10.213.0.1:8080"
    assert r.env["HOME"] == "/tmp"  # the app's uid has no passwd entry; / is read-only
    assert r.warnings == ()


def test_command_replaces_the_entrypoint_and_the_cmd_and_args_replace_the_cmd() -> None:
    r = render(intent({"command": ["/bin/sh", "-c", "exec serve"]}), {}, CONFIG)
    assert r.argv == ("/bin/sh", "-c", "exec serve")
    r = render(intent({"args": ["other.py", "--fast"]}), {}, CONFIG)
    assert r.argv == ("/app/.venv/bin/python", "other.py", "--fast")
    r = render(intent({"command": ["/bin/busybox"], "args": ["httpd", "-f"]}), {}, CONFIG)
    assert r.argv == ("/bin/busybox", "httpd", "-f")


def test_score_variables_win_over_the_image_env() -> None:
    r = render(intent({"variables": {"PATH": "/custom", "HOME": "/data"}}), {}, CONFIG)
    assert r.env["PATH"] == "/custom"
    assert r.env["HOME"] == "/data"


def test_an_image_with_nothing_to_run_and_no_command_names_the_field() -> None:
    with pytest.raises(PermanentError) as caught:
        render(intent({}), {}, {"config": {}})
    assert caught.value.problems[0].path == "containers.main.command"


def test_without_an_image_config_the_command_runs_as_a_host_process() -> None:
    r = render(intent({"command": ["python3", "app.py"]}, image=None), {"PATH": "/usr/bin"}, None)
    assert r.container is None
    assert r.argv == ("python3", "app.py")
    with pytest.raises(PermanentError, match="command"):
        render(intent({}, image=None), {}, None)


def test_files_are_rendered_with_their_content_and_mode() -> None:
    container = {
        "files": {
            "/etc/app/config.yaml": {"content": "level: ${metadata.name}\n", "mode": "0640"},
            "/etc/app/logo.bin": {"binaryContent": base64.b64encode(b"\x00\x01").decode()},
        }
    }
    r = render(intent(container), {}, CONFIG)
    assert r.container is not None
    assert r.container.files == (
        FileMount("/etc/app/config.yaml", b"level: web\n", 0o640),
        FileMount("/etc/app/logo.bin", b"\x00\x01", 0o444),
    )
    assert "level" not in repr(r.container.files)  # content may carry a secret


def test_a_file_from_the_source_tree_is_refused_naming_the_field() -> None:
    with pytest.raises(PermanentError) as caught:
        render(intent({"files": {"/etc/x": {"source": "x.conf"}}}), {}, CONFIG)
    assert caught.value.problems[0].path == 'containers.main.files["/etc/x"].source'


def test_volumes_mount_declared_volume_resources() -> None:
    container = {
        "volumes": {
            "/data": {"source": "${resources.data}"},
            "/cache": {"source": "data", "path": "cache/", "readOnly": True},
        }
    }
    r = render(intent(container, resources={"data": {"type": "volume"}}), {}, CONFIG)
    assert r.container is not None
    assert r.container.volumes == (
        VolumeMount("/cache", "data", "cache", True),
        VolumeMount("/data", "data", "", False),
    )


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ({"source": "nope"}, 'containers.main.volumes["/data"].source'),
        ({"source": "data", "path": "../other"}, 'containers.main.volumes["/data"].path'),
    ],
)
def test_a_bad_volume_is_refused_naming_the_field(volume: dict[str, Any], field: str) -> None:
    with pytest.raises(PermanentError) as caught:
        render(intent({"volumes": {"/data": volume}}, resources={"data": {"type": "volume"}}), {}, CONFIG)
    assert caught.value.problems[0].path == field


def test_limits_reach_the_container() -> None:
    r = render(intent({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}), {}, CONFIG)
    assert (r.memory_limit_bytes, r.cpu_limit_millis) == (64 * 2**20, 250)
