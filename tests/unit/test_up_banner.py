"""What `yunzhou up` tells a new user to paste (issue 14, first hour 2): the venv's activate script by its
full path, so it works from any folder, and YUNZHOU_URL only when the server is not at the CLI's default."""

from __future__ import annotations

import sys
from pathlib import Path

from yunzhou.demo import banner, cli_setup_lines


def test_the_default_server_needs_only_the_path_line() -> None:
    [line] = cli_setup_lines("http://127.0.0.1:7070")
    assert line in (
        f"source {Path(sys.prefix) / 'bin' / 'activate'}",
        f'export PATH={Path(sys.executable).parent}:"$PATH"',
    )


def test_another_port_is_named() -> None:
    assert cli_setup_lines("http://127.0.0.1:7071")[1:] == ["export YUNZHOU_URL=http://127.0.0.1:7071"]


def test_the_banner_lists_apps_token_file_and_what_to_paste(tmp_path: Path) -> None:
    text = banner("http://127.0.0.1:7070", ["shop/dev/orders release 1, ready: http://orders.dev.shop.localhost:8080"],
                  tmp_path / "admin-token")  # fmt: skip
    assert "  app             shop/dev/orders release 1, ready" in text
    assert f"  admin token     {tmp_path / 'admin-token'}" in text
    paste = text[text.index("In another terminal") :].splitlines()
    assert paste[1].strip() == cli_setup_lines("http://127.0.0.1:7070")[0]
    assert paste[2].strip() == "yunzhou apps shop/dev"
    assert text.endswith("Press Ctrl-C to stop everything.")
