"""The server's HTTPS settings: YUNZHOU_TLS_LISTEN / --tls-listen and YUNZHOU_ACME_* (docs/config.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from yunzhou.local_platform import TlsSettings
from yunzhou.server import ServerConfig


def test_no_https_unless_a_listener_is_given() -> None:
    settings = TlsSettings.from_env({})
    assert settings.listen is None
    assert settings.acme_directory is None
    assert settings.local_lifetime == 30 * 86400


def test_each_variable_sets_its_setting(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "YUNZHOU_TLS_LISTEN": "[::1]:8443",
        "YUNZHOU_ACME_DIRECTORY": "https://acme.example.test/dir",
        "YUNZHOU_ACME_EMAIL": "ops@example.test",
        "YUNZHOU_ACME_CA_BUNDLE": str(bundle),
        "YUNZHOU_TLS_LOCAL_LIFETIME": "60",
        "YUNZHOU_ACME_CHALLENGE": "dns-01",
    }
    assert TlsSettings.from_env(env) == TlsSettings(
        "[::1]:8443", "https://acme.example.test/dir", "ops@example.test", bundle, 60.0, "dns-01"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("YUNZHOU_TLS_LISTEN", "8443"),
        ("YUNZHOU_TLS_LISTEN", "127.0.0.1:99999"),
        ("YUNZHOU_ACME_DIRECTORY", "http://acme.example.test/dir"),
        ("YUNZHOU_ACME_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("YUNZHOU_TLS_LOCAL_LIFETIME", "1"),
        ("YUNZHOU_ACME_CHALLENGE", "tls-alpn-01"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        TlsSettings.from_env({name: value})


def test_the_tls_listen_flag_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUNZHOU_TLS_LISTEN", "127.0.0.1:8443")
    assert ServerConfig.from_env(tmp_path).tls.listen == "127.0.0.1:8443"
    assert ServerConfig.from_env(tmp_path, tls_listen="127.0.0.1:9443").tls.listen == "127.0.0.1:9443"
    with pytest.raises(ValueError, match="YUNZHOU_TLS_LISTEN"):
        ServerConfig.from_env(tmp_path, tls_listen="nowhere")
