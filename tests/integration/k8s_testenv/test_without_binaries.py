"""Pieces of the Kubernetes test environment that need no binaries: the cache key the build script and
the launcher share, how `make k8s-down` decides which recorded processes to stop, certificates."""

from __future__ import annotations

import base64
import ipaddress
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from yunzhou.testing._k8s_pki import CertificateAuthority, kubeconfig
from yunzhou.testing.k8s import (
    K8sTestEnv,
    K8sTestEnvError,
    binaries_dir,
    crds_path,
    stop_recorded,
    tools_dir,
)
from yunzhou.testing.k8s_node import node_binaries_dir, stop_node


def test_cache_key_agrees_with_build_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUNZHOU_K8S_BIN", raising=False)
    printed = subprocess.run(
        ["bash", str(tools_dir() / "build.sh"), "--print-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(printed) == binaries_dir()
    assert binaries_dir().parent.parent.name == "k8s"


def test_node_cache_key_agrees_with_node_script() -> None:
    printed = subprocess.run(
        ["bash", str(tools_dir() / "node.sh"), "--print-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(printed) == node_binaries_dir()
    assert node_binaries_dir().parent.name.startswith("node-")


def test_stopping_a_real_node_that_never_ran_does_nothing(tmp_path: Path) -> None:
    assert stop_node(tmp_path / "node") == []
    (tmp_path / "node" / "run").mkdir(parents=True)
    assert stop_node(tmp_path / "node") == []


def test_crd_bundle_path_agrees_with_its_script() -> None:
    printed = subprocess.run(
        ["bash", str(tools_dir() / "crds.sh"), "--print-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(printed) == crds_path()
    assert crds_path().parent.name.startswith("crds-")


def test_stop_recorded_signals_only_the_recorded_binary(tmp_path: Path) -> None:
    sleep = Path("/bin/sleep").resolve()
    ours = subprocess.Popen([sleep, "300"], start_new_session=True)
    other = subprocess.Popen([sleep, "300"], start_new_session=True)
    try:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "ours.pid").write_text(f"{ours.pid}\n{sleep}\n")
        # A pid file whose pid now runs a different program (pid reuse) must not get it killed.
        (tmp_path / "run" / "stale.pid").write_text(f"{other.pid}\n/nonexistent/kube-apiserver\n")
        assert stop_recorded(tmp_path, grace=5) == ["ours"]
        assert ours.wait(5) == -signal.SIGTERM
        assert other.poll() is None
        assert list((tmp_path / "run").iterdir()) == []
        assert stop_recorded(tmp_path) == []
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()


def test_certificates_chain_to_the_ca_and_carry_identity() -> None:
    ca = CertificateAuthority("test-ca")
    ca_cert = x509.load_pem_x509_certificate(ca.pair.cert)
    admin = x509.load_pem_x509_certificate(ca.issue_client("alice", ("system:masters", "devs")).cert)
    admin.verify_directly_issued_by(ca_cert)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    groups = {a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)}
    assert groups == {"system:masters", "devs"}
    serving = x509.load_pem_x509_certificate(ca.issue_serving("srv", ("127.0.0.1", "kubernetes")).cert)
    serving.verify_directly_issued_by(ca_cert)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["kubernetes"]


def test_kubeconfig_embeds_everything() -> None:
    ca = CertificateAuthority("test-ca")
    pair = ca.issue_client("bob")
    config = kubeconfig("https://127.0.0.1:6443", ca.pair.cert, "bob", pair)
    assert config["current-context"] == "k8s-testenv"
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]) == ca.pair.cert
    assert base64.b64decode(config["users"][0]["user"]["client-key-data"]) == pair.key


def test_a_component_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    etcd = bin_dir / "etcd"
    etcd.write_text("#!/bin/sh\necho 'etcdmain: boom' >&2\nexit 3\n")
    etcd.chmod(0o755)
    env = K8sTestEnv(tmp_path / "env", bin_dir=bin_dir, start_timeout=30)
    with pytest.raises(
        K8sTestEnvError, match=r"etcd exited with 3 while waiting for etcd /health"
    ) as failure:
        env.start()
    assert "etcdmain: boom" in str(failure.value)
    assert env.pids == {}
    assert list((tmp_path / "env" / "run").iterdir()) == []
