"""Containers on the shared bridge: isolated from each other, from the host but its allowed ports, and from
the outside unless their attachment has egress. Everything is removed on detach."""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.sandbox.conftest import Attachments, Sandbox, leftovers
from yunzhou.sandbox import Network, NetworkAttachment
from yunzhou.sandbox.network import GATEWAY, names_for

OUTSIDE_NS, OUTSIDE_HOST, OUTSIDE_PEER = "yzt-outside", "yzt-outh", "yzt-outp"
OUTSIDE_HOST_IP, OUTSIDE_IP = "198.51.100.1", "198.51.100.2"  # TEST-NET-2: never a real destination


def wait_for_http(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=1.0).text
        except httpx.HTTPError:
            assert time.monotonic() < deadline, f"nothing served at {url}"
            time.sleep(0.01)


def serve_httpd(sandbox: Sandbox, network: Attachments, name: str) -> NetworkAttachment:
    container_id = f"yzt-{name}"
    attachment = network.attach(container_id)
    spec = sandbox.spec(name, "httpd", "-f", "-p", "8000", "-h", "/www", id=container_id, network=attachment)
    sandbox.start(spec)
    wait_for_http(f"http://{attachment.ip}:8000/index.html")
    return attachment


@pytest.fixture
def host_listeners() -> Iterator[tuple[int, int]]:
    """Two HTTP servers on the gateway address: (an allowed port, a port nobody allowed)."""
    servers = [http.server.ThreadingHTTPServer((GATEWAY, 0), http.server.SimpleHTTPRequestHandler)]
    servers.append(http.server.ThreadingHTTPServer((GATEWAY, 0), http.server.SimpleHTTPRequestHandler))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        yield servers[0].server_address[1], servers[1].server_address[1]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def probe(sandbox: Sandbox, network: Attachments, name: str, url: str, *, egress: bool = False) -> int:
    """Exit code of an HTTP GET of ``url`` from a fresh container on the bridge (0: it got an answer)."""
    attachment = network.attach(f"yzt-{name}", egress=egress)
    host, port = url.split("/")[2].split(":")
    # nc -w bounds the connect; busybox's own `wget -T` crashes (1.35), so wget gets a connected socket's
    # worth of trust only after nc proved the port answers
    script = f"nc -w 3 {host} {port} </dev/null && wget -q -O /dev/null {url}"
    argv = ("sh", "-c", script)
    code, _ = sandbox.run(sandbox.spec(name, *argv, id=f"yzt-{name}", network=attachment), timeout=60)
    return code


def test_containers_cannot_reach_each_other_but_the_host_reaches_them(
    sandbox: Sandbox, network: Attachments
) -> None:
    a = serve_httpd(sandbox, network, "peer-a")
    b = serve_httpd(sandbox, network, "peer-b")
    assert a.ip != b.ip
    for container_id in ("yzt-peer-a", "yzt-peer-b"):  # layer 2: the bridge forwards nothing between ports
        port = subprocess.run(
            ["bridge", "-d", "link", "show", "dev", names_for(container_id)[1]],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "isolated on" in port.stdout
    assert "hello from the sandbox" in wait_for_http(f"http://{b.ip}:8000/index.html")
    assert probe(sandbox, network, "peer-c", f"http://{a.ip}:8000/index.html") != 0
    assert probe(sandbox, network, "peer-d", f"http://{b.ip}:8000/index.html", egress=True) != 0


def test_host_ports_are_reachable_only_when_allowed(
    sandbox: Sandbox, network: Attachments, host_listeners: tuple[int, int]
) -> None:
    allowed, other = host_listeners
    network.allow(allowed)
    assert probe(sandbox, network, "host-allowed", f"http://{GATEWAY}:{allowed}/") == 0
    assert probe(sandbox, network, "host-other", f"http://{GATEWAY}:{other}/") != 0
    network.network.disallow_host_port(allowed)
    assert probe(sandbox, network, "host-revoked", f"http://{GATEWAY}:{allowed}/") != 0


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[str]:
    """A machine "outside": a netns behind its own veth with an HTTP server; yields its URL."""
    subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", OUTSIDE_NS], check=True)
    server = None
    try:
        batch = (
            f"link add {OUTSIDE_HOST} type veth peer name {OUTSIDE_PEER} netns {OUTSIDE_NS}\n"
            f"addr add {OUTSIDE_HOST_IP}/30 dev {OUTSIDE_HOST}\nlink set {OUTSIDE_HOST} up\n"
        )
        subprocess.run(["ip", "-batch", "-"], input=batch, text=True, check=True)
        inside = f"addr add {OUTSIDE_IP}/30 dev {OUTSIDE_PEER}\nlink set {OUTSIDE_PEER} up\nlink set lo up\n"
        subprocess.run(["ip", "-n", OUTSIDE_NS, "-batch", "-"], input=inside, text=True, check=True)
        (tmp_path / "ok.txt").write_text("outside\n")
        with (tmp_path / "outside.log").open("wb") as log:
            server = subprocess.Popen(
                ["ip", "netns", "exec", OUTSIDE_NS, "python3", "-m", "http.server", "-b", OUTSIDE_IP, "9000"],
                cwd=tmp_path,
                stdout=log,
                stderr=log,
            )
        assert wait_for_http(f"http://{OUTSIDE_IP}:9000/ok.txt") == "outside\n"
        yield f"http://{OUTSIDE_IP}:9000/ok.txt"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        subprocess.run(["ip", "netns", "del", OUTSIDE_NS], check=True)
    deadline = time.monotonic() + 30
    while Path("/sys/class/net", OUTSIDE_HOST).exists():  # the kernel removes a netns' links asynchronously
        assert time.monotonic() < deadline, f"{OUTSIDE_HOST} outlived its netns"
        time.sleep(0.05)


def test_egress_goes_out_through_nat_only_when_switched_on(
    sandbox: Sandbox, network: Attachments, outside: str, tmp_path: Path
) -> None:
    assert probe(sandbox, network, "egress-off", outside) != 0
    assert probe(sandbox, network, "egress-on2", outside, egress=True) == 0
    # masqueraded: the outside saw the host's address, not the container's (it has no route back to it)
    assert f"{OUTSIDE_HOST_IP} - -" in (tmp_path / "outside.log").read_text()
    assert probe(sandbox, network, "egress-off2", outside) != 0


def test_detach_removes_netns_veth_and_rules(network: Attachments) -> None:
    attachment = network.attach("yzt-detach", egress=True)
    netns, host_end, _ = names_for("yzt-detach")
    assert attachment.netns_path == Path("/run/netns", netns)
    assert Path("/sys/class/net", host_end).exists()
    assert leftovers("yzt-detach", attachment.ip) != []
    network.network.detach("yzt-detach")
    assert leftovers("yzt-detach", attachment.ip) == []
    assert "yzt-detach" not in network.network.attachments()
    network.network.detach("yzt-detach")  # idempotent


def test_attach_again_returns_the_same_attachment_and_switches_egress(network: Attachments) -> None:
    first = network.attach("yzt-again")
    again = network.attach("yzt-again", egress=True)
    assert (again.ip, again.netns_path, again.egress) == (first.ip, first.netns_path, True)
    assert any(first.ip in line for line in leftovers("yzt-again", first.ip))
    network.attach("yzt-again", egress=False)
    netns, host_end, _ = names_for("yzt-again")
    assert leftovers("yzt-again", first.ip) == [f"netns {netns}", f"link {host_end}"]


def test_an_attachment_whose_netns_vanished_is_reclaimed(network: Attachments) -> None:
    stale = network.attach("yzt-stale", egress=True)
    subprocess.run(["ip", "netns", "del", names_for("yzt-stale")[0]], check=True)
    network.attach("yzt-fresh")
    assert "yzt-stale" not in network.network.attachments()
    assert leftovers("yzt-stale", stale.ip) == []


def test_concurrent_attaches_get_distinct_addresses(network: Attachments) -> None:
    ids = [f"yzt-many-{i}" for i in range(8)]
    for container_id in ids:
        network.made[container_id] = None  # detached by the fixture even if a thread fails
    results: dict[str, str] = {}

    def attach(container_id: str) -> None:
        results[container_id] = Network().attach(container_id).ip

    threads = [threading.Thread(target=attach, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == sorted(ids)
    assert len(set(results.values())) == len(ids)
    for container_id, ip in results.items():
        network.made[container_id] = ip


def test_a_container_with_no_network_has_only_loopback(sandbox: Sandbox) -> None:
    code, out = sandbox.run(sandbox.spec("nonet", "ip", "-o", "link"))
    assert code == 0
    assert [line.split(":")[1].strip() for line in out.strip().splitlines()] == ["lo"]


def test_an_allowed_port_is_open_on_the_gateway_address_only(
    sandbox: Sandbox, network: Attachments, outside: str
) -> None:
    # a service listening on every address: containers reach it at the gateway, not at the host's
    # other addresses (here the host end of the "outside" veth)
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        network.allow(port)
        assert probe(sandbox, network, "gw-only-a", f"http://{GATEWAY}:{port}/") == 0
        assert probe(sandbox, network, "gw-only-b", f"http://{OUTSIDE_HOST_IP}:{port}/") != 0
    finally:
        server.shutdown()
        server.server_close()
