"""The expiry alert fires for a certificate about to expire, as users run it: a real `yunzhou server`
with an HTTPS listener, an app in an environment with tls "local" whose certificate the local CA issues
for 10 days (YUNZHOU_TLS_LOCAL_LIFETIME), the router exporting its notAfter, the server scraping it into
its metric store, and the untuned platform rule CertificateExpiringSoon (14 days) firing for that host."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.integration.local.test_https import HOST, deploy_web, start_server
from tests.integration.local.test_traffic import DEADLINE
from yunzhou.client import YunzhouClient
from yunzhou.testing import polling

LIFETIME = 10 * 86400


def test_a_certificate_about_to_expire_fires_certificate_expiring_soon(tmp_path: Path) -> None:
    env = {
        "YUNZHOU_TLS_LOCAL_LIFETIME": str(LIFETIME),
        "YUNZHOU_SCRAPE_INTERVAL": "0.5",
        "YUNZHOU_ALERT_INTERVAL": "0.5",
    }
    with start_server(tmp_path, **env) as server, YunzhouClient(server.url, server.admin_token) as client:
        client.create_project("shop")
        client.create_environment("shop", "dev")
        client.set_environment_names("shop", "dev", tls="local")
        deploy_web(client)

        def firing() -> list[dict[str, Any]]:
            return [
                a
                for a in client.list_alerts(None)
                if a["alertname"] == "CertificateExpiringSoon" and a["state"] == "firing"
            ]

        [alert] = polling.wait_until("CertificateExpiringSoon firing", firing, DEADLINE, interval=0.2)
        assert alert["labels"]["host"] == HOST
        assert alert["labels"]["severity"] == "warning"
        assert 9 * 86400 < alert["value"] <= LIFETIME
        [series] = client.metrics_query(f'yunzhou_certificate_expiry_timestamp_seconds{{host="{HOST}"}}')[
            "result"
        ]
        assert time.time() + 9 * 86400 < float(series["value"][1]) <= time.time() + LIFETIME
