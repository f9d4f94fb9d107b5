"""HTTPS on the local target with certificates from a real ACME CA: Pebble (Debian's test CA) resolving the
app's name through a real Knot and validating HTTP-01 against the server's own router
(``--acme-challenges <data dir>/acme-challenges``). Pebble issues 30 s certificates here, so the server
renews one while a client keeps calling; ``curl --cacert <pebble root>`` gets the app."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.local.test_https import KeepCalling, deploy_web, secured, start_server, try_https_get
from tests.integration.local.test_traffic import DEADLINE
from yunzhou.client import YunzhouClient
from yunzhou.names.dns import Rfc2136Provider
from yunzhou.testing import polling
from yunzhou.testing.acme_ca import PebbleServer
from yunzhou.testing.dns_servers import ZONE, KnotServer

pytestmark = pytest.mark.slow
HOST = f"web.dev.shop.{ZONE}"


class ShortLivedPebble(PebbleServer):
    """Pebble issuing certificates valid for 30 s (``certificateValidityPeriod``): due for renewal at 20 s."""

    def config(self, cert_file: Path, key_file: Path) -> dict[str, object]:
        doc = super().config(cert_file, key_file)
        pebble = doc["pebble"]
        assert isinstance(pebble, dict)
        pebble["certificateValidityPeriod"] = 30
        return doc


def test_a_certificate_from_pebble_is_served_to_curl_and_renewed_without_a_failed_request(
    tmp_path: Path,
) -> None:
    with KnotServer(tmp_path / "knot") as knot:
        dns = Rfc2136Provider(knot.rfc2136_settings())
        dns.upsert(ZONE, HOST, "A", ["127.0.0.1"], 60)  # Pebble resolves the app's name like a real CA
        server = start_server(tmp_path, YUNZHOU_BASE_DOMAIN=ZONE, YUNZHOU_ACME_EMAIL="ops@example.test")
        pebble_dir = tmp_path / "pebble"
        with ShortLivedPebble(
            pebble_dir, http_port=server.router_port, dns_server=("127.0.0.1", knot.dns_port)
        ) as pebble:
            server.extra_env.update(
                {
                    "YUNZHOU_ACME_DIRECTORY": pebble.directory_url,
                    "YUNZHOU_ACME_CA_BUNDLE": str(pebble.ca_bundle),
                }
            )
            with server, YunzhouClient(server.url, server.admin_token) as client:
                client.create_project("shop")
                client.create_environment("shop", "dev")
                client.set_environment_names("shop", "dev", tls="acme")
                deploy_web(client)
                root = pebble.write_issuing_root(tmp_path / "pebble-root.pem")
                port = int(server.extra_env["YUNZHOU_TLS_LISTEN"].rpartition(":")[2])

                status, first_serial = polling.wait_until(
                    "the app over HTTPS", lambda: try_https_get(port, HOST, root), DEADLINE, interval=0.2
                )
                assert status == b"HTTP/1.1 200 OK"
                curl = subprocess.run(
                    ["curl", "-sS", "--fail", "--cacert", str(root), "--resolve", f"{HOST}:{port}:127.0.0.1",
                     f"https://{HOST}:{port}/"],
                    capture_output=True, text=True, timeout=30, check=False,
                )  # fmt: skip
                assert curl.returncode == 0, curl.stderr
                assert "v1" in curl.stdout
                condition = polling.wait_until(
                    "Secured=True", lambda: (c := secured(client)) and c["status"] == "True" and c, DEADLINE
                )
                assert condition["reason"] == "CertificatesIssued"

                with KeepCalling(port, HOST, root) as calls:
                    polling.wait_until(
                        "a renewal by Pebble", lambda: set(calls.serials) - {first_serial}, 90.0, interval=0.2
                    )
                assert calls.failures == []
                assert len(calls.serials) > 20
                assert list((tmp_path / "data" / "acme-challenges").iterdir()) == []  # answers removed


def test_dns01_through_the_platforms_dns_provider_gets_a_certificate_from_pebble(tmp_path: Path) -> None:
    """YUNZHOU_ACME_CHALLENGE=dns-01: the server writes _acme-challenge TXT records through the DNS provider
    an admin registered (RFC 2136 to a real Knot), Pebble reads them from Knot, the app is served over
    HTTPS, and the TXT records are gone afterwards."""
    with KnotServer(tmp_path / "knot") as knot:
        server = start_server(
            tmp_path, YUNZHOU_BASE_DOMAIN=ZONE, YUNZHOU_ACME_EMAIL="ops@example.test",
            YUNZHOU_ACME_CHALLENGE="dns-01",
        )  # fmt: skip
        with PebbleServer(
            tmp_path / "pebble", http_port=server.router_port, dns_server=("127.0.0.1", knot.dns_port)
        ) as pebble:
            server.extra_env.update(
                {
                    "YUNZHOU_ACME_DIRECTORY": pebble.directory_url,
                    "YUNZHOU_ACME_CA_BUNDLE": str(pebble.ca_bundle),
                }
            )
            with server, YunzhouClient(server.url, server.admin_token) as client:
                settings = {
                    "zones": [ZONE], "server": "127.0.0.1", "port": knot.dns_port,
                    "key_name": knot.key_name, "key_algorithm": knot.key_algorithm,
                }  # fmt: skip
                client.add_dns_provider("corp", "rfc2136", settings, knot.key_secret)
                client.create_project("shop")
                client.create_environment("shop", "dev")
                client.set_environment_names("shop", "dev", tls="acme")
                deploy_web(client)
                root = pebble.write_issuing_root(tmp_path / "pebble-root.pem")
                port = int(server.extra_env["YUNZHOU_TLS_LISTEN"].rpartition(":")[2])
                status, _ = polling.wait_until(
                    "the app over HTTPS", lambda: try_https_get(port, HOST, root), DEADLINE, interval=0.2
                )
                assert status == b"HTTP/1.1 200 OK"
                answers = tmp_path / "data" / "acme-challenges"  # HTTP-01's: never written
                assert not answers.exists() or list(answers.iterdir()) == []
                knot_records = Rfc2136Provider(knot.rfc2136_settings()).list_records(ZONE)
                assert [r for r in knot_records if r.name.startswith("_acme-challenge.")] == []  # removed
