"""Container networking: one shared bridge, an address and a netns per container, iptables of our own.

Layout (one per machine, shared by every server and test on it; every step is idempotent)::

    host ── yzbr0 10.213.0.1/16 ──┬── yzh<hash> (isolated port) ══ eth0 10.213.x.y in netns yz-<hash>
                                  └── yzh<hash> (isolated port) ══ eth0 …

- Each container gets a network namespace ``/run/netns/yz-<hash of its id>`` with ``lo`` and ``eth0`` (one
  end of a veth pair), an address from 10.213.0.0/16 and a default route via the gateway 10.213.0.1.
- The host ends are bridge ports with ``isolated on``: containers cannot reach each other at all (not even
  ARP), only the host. The host (the router, probes) reaches every container at its address.
- IPv6 is off on the bridge and on both veth ends (no link-local addresses), so nothing bypasses the IPv4
  rules below.
- IPAM: ``/run/yunzhou/<bridge>.json`` (container id → address, netns, egress) guarded by an
  ``fcntl.flock`` on ``<bridge>.lock``; entries whose netns is gone (a crashed server, a reboot) are
  reclaimed at the next attach.
- iptables (Debian's is the nf_tables backend) in chains of our own, rebuilt from the state file in one
  ``iptables-restore --noflush`` at every change, so they always match it:

  - ``YZ-INPUT`` (from ``INPUT -i yzbr0``): replies accepted, then only TCP to the gateway address on the
    ports registered with ``allow_host_port`` (the routers' and the registry's data ports), the rest dropped:
    a container cannot reach the control plane's API or anything else on the host.
  - ``YZ-FORWARD`` (from ``FORWARD``): replies to containers accepted; traffic from the subnet out of the
    machine accepted *per source address* only for attachments made with ``egress=True``; everything else
    from or to the bridge dropped. The per-address rule is removed by ``detach``.
  - nat ``YZ-POSTROUTING``: the subnet is masqueraded when it leaves through any non-bridge interface.

  ``net.ipv4.ip_forward`` is switched on (needed for egress); forwarding between the host's *other*
  interfaces then follows the host's own FORWARD policy, which this module leaves alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunzhou.domain.errors import Conflict, PermanentError, TemporaryError
from yunzhou.sandbox.bundle import NetworkAttachment

BRIDGE = "yzbr0"
SUBNET = "10.213.0.0/16"
GATEWAY = "10.213.0.1"
STATE_DIR = Path("/run/yunzhou")
NETNS_DIR = Path("/run/netns")
CHAIN_INPUT, CHAIN_FORWARD, CHAIN_NAT = "YZ-INPUT", "YZ-FORWARD", "YZ-POSTROUTING"
_JUMPS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (  # table, built-in chain, match, our chain
    ("filter", "INPUT", ("-i", BRIDGE), CHAIN_INPUT),
    ("filter", "FORWARD", (), CHAIN_FORWARD),
    ("nat", "POSTROUTING", (), CHAIN_NAT),
)


@dataclass
class NetworkError(PermanentError):
    """A network tool failed; the message carries its own words."""

    code: str = "network_failed"


def names_for(container_id: str) -> tuple[str, str, str]:
    """(netns, host veth, container veth before its rename to eth0) — at most 15 characters each."""
    digest = hashlib.sha256(container_id.encode()).hexdigest()[:12]
    return f"yz-{digest}", f"yzh{digest}", f"yzc{digest}"


def _run(*argv: str, stdin: str | None = None, ok_if: str = "") -> str:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"{' '.join(argv[:3])}: {exc}") from exc
    if done.returncode != 0 and not (ok_if and ok_if in done.stderr):
        raise NetworkError(f"{' '.join(argv)}: {' '.join(done.stderr.split())}")
    return done.stdout


def _default_mtu() -> int:
    """The MTU of the interface holding the default route (1500 when there is none)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                return int(Path(f"/sys/class/net/{fields[0]}/mtu").read_text())
    return 1500


class Network:
    """The shared bridge and its attachments (see the module docstring). Needs root."""

    def __init__(self) -> None:
        # one state for the one bridge: a second state file would rebuild the same chains without the
        # first one's rules, so there is no parameter for it
        self.state_dir = STATE_DIR
        self.bridge = BRIDGE
        self.subnet = ipaddress.ip_network(SUBNET)
        self.gateway = GATEWAY
        self._state_file = STATE_DIR / f"{BRIDGE}.json"
        self._lock_file = STATE_DIR / f"{BRIDGE}.lock"
        self._bridge_ready = False  # checked fully once per instance, then only for existence

    # ---- shared state ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state, under the machine-wide lock; written back when the block ends without error."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                state = json.loads(self._state_file.read_text())
            except (OSError, ValueError):
                state = {}
            state.setdefault("attachments", {})
            state.setdefault("ports", [])
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                tmp = self._state_file.with_name(self._state_file.name + ".tmp")
                tmp.write_text(json.dumps(state, sort_keys=True, indent=1))
                tmp.replace(self._state_file)
        finally:
            os.close(fd)

    def _ensure_bridge(self) -> None:
        if self._bridge_ready and Path(f"/sys/class/net/{self.bridge}").exists():
            return
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            _run("ip", "link", "add", self.bridge, "type", "bridge", ok_if="File exists")
        with contextlib.suppress(FileNotFoundError):  # a kernel without IPv6 has nothing to switch off
            Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6").write_text("1")
        address = f"{self.gateway}/{self.subnet.prefixlen}"
        if address not in _run("ip", "-o", "-4", "addr", "show", "dev", self.bridge):
            _run("ip", "addr", "add", address, "dev", self.bridge, ok_if="File exists")
        _run("ip", "link", "set", self.bridge, "up")
        try:
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        except OSError as exc:
            raise NetworkError(f"cannot switch on net.ipv4.ip_forward: {exc.strerror}") from exc
        self._bridge_ready = True

    def _rules(self, state: dict[str, Any]) -> str:
        """Our three chains as iptables-restore input (declaring a chain flushes it)."""
        br, net, gw = self.bridge, str(self.subnet), self.gateway
        established = "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        lines = ["*filter", f":{CHAIN_INPUT} - [0:0]", f":{CHAIN_FORWARD} - [0:0]"]
        lines.append(f"-A {CHAIN_INPUT} {established}")
        lines += [f"-A {CHAIN_INPUT} -d {gw}/32 -p tcp --dport {p} -j ACCEPT" for p in sorted(state["ports"])]
        lines.append(f"-A {CHAIN_INPUT} -j DROP")
        lines.append(f"-A {CHAIN_FORWARD} -o {br} {established}")
        for container_id, entry in sorted(state["attachments"].items()):
            if entry["egress"]:
                comment = f'-m comment --comment "yunzhou {names_for(container_id)[0]}"'
                lines.append(f"-A {CHAIN_FORWARD} -s {entry['ip']}/32 -i {br} ! -o {br} {comment} -j ACCEPT")
        lines += [f"-A {CHAIN_FORWARD} -i {br} -j DROP", f"-A {CHAIN_FORWARD} -o {br} -j DROP", "COMMIT"]
        lines += [
            "*nat",
            f":{CHAIN_NAT} - [0:0]",
            f"-A {CHAIN_NAT} -s {net} ! -o {br} -j MASQUERADE",
            "COMMIT",
        ]
        return "\n".join(lines) + "\n"

    def _apply_rules(self, state: dict[str, Any]) -> None:
        _run("iptables-restore", "-w", "--noflush", stdin=self._rules(state))
        for table, chain, match, ours in _JUMPS:
            rule = [*match, "-j", ours]
            check = subprocess.run(
                ["iptables", "-w", "-t", table, "-C", chain, *rule], capture_output=True, check=False
            )
            if check.returncode != 0:
                _run("iptables", "-w", "-t", table, "-I", chain, "1", *rule)

    def _reclaim(self, state: dict[str, Any]) -> bool:
        """Drop entries whose netns is gone (their container and server went away without detaching);
        True when one of them had an egress rule."""
        gone = [cid for cid in state["attachments"] if not (NETNS_DIR / names_for(cid)[0]).exists()]
        for container_id in gone:
            self._remove_links(container_id)
        return any(state["attachments"].pop(cid)["egress"] for cid in gone)

    # ---- the public API --------------------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the bridge, switch on forwarding and (re)build our iptables chains. Idempotent."""
        with self._locked() as state:
            self._ensure_bridge()
            self._reclaim(state)
            self._apply_rules(state)

    def attach(self, container_id: str, *, egress: bool = False) -> NetworkAttachment:
        """A netns on the bridge for ``container_id`` (the same one again when it is still attached)."""
        netns, host_end, peer = names_for(container_id)
        with self._locked() as state:
            self._ensure_bridge()
            rules_changed = self._reclaim(state)
            entry = state["attachments"].get(container_id)
            if entry is None:
                entry = {"ip": self._free_address(state), "egress": egress}
                state["attachments"][container_id] = entry
                try:
                    self._create(netns, host_end, peer, entry["ip"])
                except (NetworkError, Conflict):
                    del state["attachments"][container_id]
                    self._remove_links(container_id)
                    raise
                rules_changed |= egress
            elif entry["egress"] != egress:
                entry["egress"] = egress
                rules_changed = True
            if rules_changed:  # a container without egress needs no rule: the chains' defaults drop
                self._apply_rules(state)
            return self._attachment(container_id, entry)

    def detach(self, container_id: str) -> None:
        """Remove the container's netns, veth pair, address and rules. Idempotent."""
        with self._locked() as state:
            entry = state["attachments"].pop(container_id, None)
            self._remove_links(container_id)
            if entry is not None and entry["egress"]:
                self._apply_rules(state)

    def attachments(self) -> dict[str, NetworkAttachment]:
        """Every attachment on this bridge (all servers'), by container id."""
        with self._locked() as state:
            return {cid: self._attachment(cid, e) for cid, e in state["attachments"].items()}

    def allow_host_port(self, port: int) -> None:
        """Let containers open TCP connections to ``port`` on the gateway address (machine-wide)."""
        self._set_port(port, allowed=True)

    def disallow_host_port(self, port: int) -> None:
        self._set_port(port, allowed=False)

    def allowed_host_ports(self) -> list[int]:
        with self._locked() as state:
            return sorted(state["ports"])

    # ---- helpers ---------------------------------------------------------------------------------------
    def _set_port(self, port: int, *, allowed: bool) -> None:
        if not 1 <= port <= 65535:
            raise NetworkError(f"port {port}: must be 1-65535")
        with self._locked() as state:
            ports = set(state["ports"])
            ports = ports | {port} if allowed else ports - {port}
            state["ports"] = sorted(ports)
            self._ensure_bridge()
            self._apply_rules(state)

    def _attachment(self, container_id: str, entry: dict[str, Any]) -> NetworkAttachment:
        netns = names_for(container_id)[0]
        return NetworkAttachment(NETNS_DIR / netns, entry["ip"], self.gateway, bool(entry["egress"]))

    def _free_address(self, state: dict[str, Any]) -> str:
        """The next free address after the last one given (an address just freed is reused last)."""
        taken = {e["ip"] for e in state["attachments"].values()} | {self.gateway}
        first, size = int(self.subnet.network_address) + 1, self.subnet.num_addresses - 2
        last = int(ipaddress.ip_address(state.get("last") or self.gateway))
        for step in range(1, size + 1):
            address = str(ipaddress.ip_address(first + (last - first + step) % size))
            if address not in taken:
                state["last"] = address
                return address
        raise TemporaryError(f"no free address left on {self.bridge} ({self.subnet})", code="no_address")

    def _create(self, netns: str, host_end: str, peer: str, ip: str) -> None:
        if (NETNS_DIR / netns).exists():
            raise Conflict(f"network namespace {netns} exists but is not in {self._state_file}")
        mtu = str(_default_mtu())
        # the MAC follows from the address (as Docker does): a reused address never meets a stale ARP entry
        mac = "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed)
        host_batch = (
            f"netns add {netns}\n"
            f"link add {host_end} mtu {mtu} type veth"
            f" peer name {peer} address {mac} mtu {mtu} netns {netns}\n"
            f"link set {host_end} addrgenmode none\n"
            f"link set {host_end} master {self.bridge} up\n"
            f"link set dev {host_end} type bridge_slave isolated on\n"
        )
        _run("ip", "-batch", "-", stdin=host_batch)
        inside = (
            f"link set {peer} name eth0\n"
            "link set eth0 addrgenmode none\n"
            f"addr add {ip}/{self.subnet.prefixlen} dev eth0\n"
            "link set eth0 up\n"
            "link set lo up\n"
            f"route add default via {self.gateway}\n"
        )
        _run("ip", "-n", netns, "-batch", "-", stdin=inside)

    @staticmethod
    def _remove_links(container_id: str) -> None:
        netns, host_end, _ = names_for(container_id)
        batch = ""
        if Path(f"/sys/class/net/{host_end}").exists():
            batch += f"link del {host_end}\n"  # both ends, at once (a netns' links go asynchronously)
        if (NETNS_DIR / netns).exists():
            batch += f"netns del {netns}\n"
        if batch:  # the veth may vanish meanwhile with its netns (reclaim): only a netns left is an error
            _run("ip", "-force", "-batch", "-", stdin=batch, ok_if="Cannot find device")
        if (NETNS_DIR / netns).exists():
            raise NetworkError(f"network namespace {netns} could not be removed")
