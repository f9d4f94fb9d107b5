from __future__ import annotations

from pathlib import Path

from yunzhou.client import DEFAULT_URL, admin_token_path, default_data_dir, load_config, read_admin_token


def test_defaults_without_environment(tmp_path: Path) -> None:
    config = load_config({}, cwd=tmp_path)
    assert config.url == DEFAULT_URL == "http://127.0.0.1:7070"
    assert config.token is None
    assert config.auth_source == ""
    assert config.data_dir == tmp_path / ".yunzhou"


def test_url_and_token_from_environment(tmp_path: Path) -> None:
    config = load_config({"YUNZHOU_URL": "http://paas:9000", "YUNZHOU_TOKEN": " t0k \n"}, cwd=tmp_path)
    assert (config.url, config.token, config.auth_source) == ("http://paas:9000", "t0k", "YUNZHOU_TOKEN")


def test_token_falls_back_to_the_admin_token_file(tmp_path: Path) -> None:
    data_dir = tmp_path / ".yunzhou"
    data_dir.mkdir()
    admin_token_path(data_dir).write_text("secret-from-file\n")
    config = load_config({}, cwd=tmp_path)
    assert config.token == "secret-from-file"
    assert config.auth_source == str(data_dir / "admin-token")


def test_environment_token_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / ".yunzhou").mkdir()
    admin_token_path(tmp_path / ".yunzhou").write_text("from-file")
    assert load_config({"YUNZHOU_TOKEN": "from-env"}, cwd=tmp_path).token == "from-env"


def test_data_dir_from_environment_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    admin_token_path(tmp_path / "state").write_text("abc")
    environ = {"YUNZHOU_DATA_DIR": "state"}
    assert default_data_dir(environ, cwd=tmp_path) == tmp_path / "state"
    assert load_config(environ, cwd=tmp_path).token == "abc"
    absolute = {"YUNZHOU_DATA_DIR": str(tmp_path / "state")}
    assert default_data_dir(absolute, cwd=Path("/elsewhere")) == tmp_path / "state"


def test_empty_or_missing_token_file_means_no_token(tmp_path: Path) -> None:
    assert read_admin_token(tmp_path) is None
    admin_token_path(tmp_path).write_text("  \n")
    assert read_admin_token(tmp_path) is None


def test_unreadable_token_file_means_no_token(tmp_path: Path) -> None:
    admin_token_path(tmp_path).mkdir()  # unreadable as a file, even for root
    assert read_admin_token(tmp_path) is None
    (tmp_path / "other").mkdir()
    admin_token_path(tmp_path / "other").write_bytes(b"\xff\xfe not utf-8")
    assert read_admin_token(tmp_path / "other") is None
