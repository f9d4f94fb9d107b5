"""The platform's expiry rules fire through the real alert path: a real router serving a certificate about
to expire exports its notAfter on /metrics, the server's RouterCollector scrapes it into the metric store
(ScrapeLoop), and the AlertEvaluator fires CertificateExpiringSoon from the untuned platform default rule."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import UnixClock
from yunzhou.domain.errors import UserError
from yunzhou.names.tls.local_ca import LocalCA, write_leaf
from yunzhou.observe.alerts import AlertEvaluator
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.observe.metrics.collect import ScrapeLoop
from yunzhou.observe.metrics.collect_router import RouterCollector
from yunzhou.router import RouterProcess
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.alerts import RuleScope
from yunzhou.store import Database
from yunzhou.testing.polling import wait_until

SOON = "orders.dev.shop.localhost"  # a 2-day certificate: inside the default 14 days
LATER = "billing.dev.shop.localhost"  # 60 days: outside


@pytest.fixture
def router(tmp_path: Path) -> Iterator[RouterProcess]:
    process = RouterProcess(log_file=tmp_path / "router.log")
    process.start("127.0.0.1:0", "127.0.0.1:0", tls_listen="127.0.0.1:0")
    yield process
    process.stop(timeout=10)


def certificate(ca: LocalCA, host: str, days: float, directory: Path) -> dict[str, str]:
    cert_file, key_file = write_leaf(ca.issue([host], lifetime=dt.timedelta(days=days)), directory, host)
    return {"cert_file": str(cert_file), "key_file": str(key_file)}


def test_certificate_about_to_expire_fires_the_default_expiry_alert(
    database: Database, tmp_path: Path, router: RouterProcess
) -> None:
    ca = LocalCA.open(tmp_path / "ca")
    certificates = {
        SOON: certificate(ca, SOON, 2, tmp_path / "leaves"),
        LATER: certificate(ca, LATER, 60, tmp_path / "leaves"),
    }
    router.push_config({"version": 1, "routes": [], "certificates": certificates})
    clock = UnixClock(time.time())
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(database, tmp_path / "data", clock=clock)
    store = MetricStore.open(None)
    scrape = ScrapeLoop(store, [RouterCollector(router.metrics_text)], interval=15.0)
    evaluator = AlertEvaluator(cp, QueryEngine(store), interval=15.0)
    firing: list[dict[str, Any]] = []

    def evaluated_and_firing() -> bool:
        clock.t = time.time()
        scrape.run_once(clock.t)
        evaluator.evaluate_once(clock.t)
        firing[:] = [
            a
            for a in cp.alerts.active(SYSTEM, "")
            if a["alertname"] == "CertificateExpiringSoon" and a["state"] == "firing"
        ]
        return bool(firing)

    try:
        wait_until("CertificateExpiringSoon firing", evaluated_and_firing, timeout=60)
    finally:
        store.close()

    [alert] = firing  # only the 2-day certificate, not the 60-day one
    assert alert["labels"]["host"] == SOON
    assert alert["labels"]["severity"] == "warning"
    assert 1.9 * 86400 < alert["value"] < 2 * 86400
    assert alert["annotations"]["summary"].startswith(f"the certificate served for {SOON} expires in ")


def test_platform_expiry_rules_are_tuned_globally_only(database: Database, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    cp = ControlPlane.create(database, tmp_path / "data", clock=UnixClock())
    cp.projects.create(SYSTEM, "shop")

    def planned() -> dict[str, str]:
        return {i.key: i.rule.expr for i in cp.alerts.evaluation_plan()}

    certificate_rule = "yunzhou_certificate_expiry_timestamp_seconds - time() < 86400 * 14"
    assert planned() == {
        "CertificateExpiringSoon@platform": certificate_rule,
        "DomainExpiringSoon@platform": "yunzhou_domain_expiry_timestamp_seconds - time() < 86400 * 30",
    }
    cp.alerts.put_rule(SYSTEM, RuleScope(), "DomainExpiringSoon", {"threshold": 60})
    cp.alerts.put_rule(SYSTEM, RuleScope(), "CertificateExpiringSoon", {"enabled": False})
    assert planned() == {
        "DomainExpiringSoon@platform": "yunzhou_domain_expiry_timestamp_seconds - time() < 86400 * 60"
    }
    with pytest.raises(UserError) as refused:
        cp.alerts.put_rule(SYSTEM, RuleScope("shop"), "DomainExpiringSoon", {"threshold": 1})
    assert [p.path for p in refused.value.problems] == ["scope"]
