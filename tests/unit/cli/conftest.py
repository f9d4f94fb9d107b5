from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.unit.client.fake_api import ADMIN_TOKEN, FakeApi
from yunzhou.cli import CliState, app
from yunzhou.client import ClientConfig

URL = "http://yunzhou.test"
Run = Callable[..., Result]


# A plain, wide, uncoloured terminal, whatever the developer's or CI's environment says.
CLEAN_ENV = {
    "NO_COLOR": "1",
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "COLUMNS": "200",
    "YUNZHOU_URL": None,
    "YUNZHOU_TOKEN": None,
    "YUNZHOU_DATA_DIR": None,
    "YUNZHOU_API_PORT": None,
    "YUNZHOU_API_HOST": None,
    "YUNZHOU_ROUTER_PORT": None,
    "XDG_CONFIG_HOME": "/nonexistent/yunzhou-tests",  # a server running on this machine is not found
}


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def run(fake: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke the CLI against the fake. ``token=None`` sends no token; ``config=False`` reads the env."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(
        *args: str, token: str | None = ADMIN_TOKEN, config: bool = True, env: dict[str, Any] | None = None
    ) -> Result:
        state = CliState(transport=fake.transport, sleep=fake.sleep, clock=fake.clock)
        if config:
            state.config = ClientConfig(
                url=URL,
                token=token,
                auth_source="YUNZHOU_TOKEN" if token else "",
                data_dir=tmp_path / ".yunzhou",
            )
        result = runner.invoke(app, list(args), obj=state, env={**CLEAN_ENV, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # an unexpected error: show its traceback in the test report
        return result

    return invoke


@pytest.fixture
def shop(run: Run) -> Run:
    """A project ``shop`` with environments ``dev`` and ``prod``."""
    for args in (
        ("project", "create", "shop"),
        ("env", "create", "shop/dev"),
        ("env", "create", "shop/prod"),
    ):
        assert run(*args).exit_code == 0
    return run


SCORE = """\
apiVersion: score.dev/v1b1
metadata:
  name: orders
containers:
  web:
    image: registry.example/orders:1.0
"""


@pytest.fixture
def score_file(tmp_path: Path) -> Path:
    path = tmp_path / "app" / "score.yaml"
    path.parent.mkdir()
    path.write_text(SCORE)
    return path
