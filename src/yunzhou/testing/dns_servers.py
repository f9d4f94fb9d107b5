"""Real authoritative DNS servers for tests, each on free loopback ports with its own temp dir:

- :class:`KnotServer` — Debian's ``knot``: one zone, RFC 2136 updates and AXFR allowed for one TSIG key.
- :class:`BindServer` — Debian's ``bind9`` (``named``): the same, from a generated ``named.conf`` in the
  temp dir (never the system's ``/etc/bind``).
- :class:`PowerDnsServer` — Debian's ``pdns-server`` + ``pdns-backend-sqlite3``: the HTTP API with an API
  key, one zone created through that API.

Ready when the zone's SOA is served; stopped with SIGTERM (SIGKILL after 20 s) on leaving the ``with``,
and killed if the test run dies first (no leftover servers).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from types import TracebackType

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx

from yunzhou.components.child import ChildProcess
from yunzhou.names.dns import Rfc2136Settings
from yunzhou.testing.polling import wait_until
from yunzhou.testing.server import free_port

KNOT_MISSING = "Debian's knot package is needed (apt-get install knot)"
BIND_MISSING = "Debian's BIND 9 is needed (apt-get install bind9 bind9-dnsutils)"
PDNS_MISSING = "Debian's PowerDNS is needed (apt-get install pdns-server pdns-backend-sqlite3)"
PDNS_SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
ZONE = "example.test"
TSIG_KEY_NAME = "yunzhou-test."
TSIG_ALGORITHM = "hmac-sha256"


def soa_served(port: int, zone: str) -> bool:
    """Whether the server on 127.0.0.1:``port`` answers the zone's SOA authoritatively."""
    query = dns.message.make_query(zone + ".", dns.rdatatype.SOA)
    try:
        answer = dns.query.tcp(query, "127.0.0.1", port=port, timeout=2)
    except (OSError, dns.exception.DNSException):
        return False
    return answer.rcode() == dns.rcode.NOERROR and bool(answer.answer)


class _ServerProcess:
    """A :class:`ChildProcess` (dies with the test run, stopped on leaving the ``with``) on free ports."""

    name = "server"

    def __init__(self, workdir: Path, zone: str) -> None:
        self.workdir = workdir
        self.zone = zone
        self.dns_port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.child = ChildProcess(self.name, workdir / f"{self.name}.log")

    def _start(self, argv: Sequence[str], ready: Callable[[], bool]) -> None:
        self.child.start(argv, env=os.environ, ready=ready, timeout=60)

    def _zone_served(self) -> bool:
        return soa_served(self.dns_port, self.zone)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.child.stop(timeout=20)


class _TsigPrimary(_ServerProcess):
    """A primary for one zone taking RFC 2136 updates and AXFR signed with one random TSIG key:
    ``dns_port``, ``key_name``, ``key_algorithm``, ``key_secret``."""

    def __init__(self, workdir: Path, zone: str = ZONE) -> None:
        super().__init__(workdir, zone)
        self.key_name = TSIG_KEY_NAME
        self.key_algorithm = TSIG_ALGORITHM
        self.key_secret = base64.b64encode(secrets.token_bytes(32)).decode()

    def rfc2136_settings(self, **overrides: object) -> Rfc2136Settings:
        """The RFC 2136 provider's settings for this server and key (``overrides``: e.g. a wrong secret)."""
        fields: dict[str, object] = {
            "server": "127.0.0.1",
            "port": self.dns_port,
            "key_name": self.key_name,
            "key_secret": self.key_secret,
            "key_algorithm": self.key_algorithm,
        }
        fields.update(overrides)
        return Rfc2136Settings(**fields)  # type: ignore[arg-type]

    def zone_file(self) -> str:
        z = self.zone + "."
        return (
            f"$ORIGIN {z}\n$TTL 300\n"
            f"@ SOA ns1.{z} hostmaster.{z} 1 3600 600 86400 300\n"
            f"@ NS ns1.{z}\nns1 A 127.0.0.1\n"
        )


class KnotServer(_TsigPrimary):
    """``with KnotServer(tmp_path) as knot:`` → ``knot.dns_port``, ``knot.key_name``, ``knot.key_secret``."""

    name = "knotd"

    def config(self) -> str:
        # knot.conf is YAML; every value is a JSON string, so no input can change the structure.
        d = self.workdir
        q = json.dumps
        return "\n".join(
            [
                "server:",
                f"  rundir: {q(str(d))}",
                f"  listen: {q(f'127.0.0.1@{self.dns_port}')}",
                "database:",
                f"  storage: {q(str(d / 'db'))}",
                "control:",
                f"  listen: {q(str(d / 'knot.sock'))}",
                "log:",
                "  - target: stderr",
                "    any: info",
                "key:",
                f"  - id: {q(self.key_name)}",
                f"    algorithm: {q(self.key_algorithm)}",
                f"    secret: {q(self.key_secret)}",
                "acl:",
                "  - id: yunzhou",
                f"    key: {q(self.key_name)}",
                "    action: [update, transfer]",
                "zone:",
                f"  - domain: {q(self.zone)}",
                f"    storage: {q(str(d / 'zones'))}",
                '    file: "%s.zone"',
                "    acl: yunzhou",
                "",
            ]
        )

    def __enter__(self) -> KnotServer:
        binary = shutil.which("knotd")
        assert binary, KNOT_MISSING
        for sub in ("zones", "db"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "zones" / f"{self.zone}.zone").write_text(self.zone_file())
        conf = self.workdir / "knot.conf"
        conf.write_text(self.config())
        self._start([binary, "-c", str(conf)], ready=self._zone_served)
        return self


def _bind_string(value: object) -> str:
    """A named.conf string literal; values with a quote, backslash or newline are refused, not escaped,
    so no value can change the configuration's structure."""
    text = str(value)
    if any(c in text for c in '"\\\n;{}'):
        raise ValueError(f"not allowed in a named.conf string: {text!r}")
    return f'"{text}"'


class BindServer(_TsigPrimary):
    """``with BindServer(tmp_path) as bind:`` → the same attributes as :class:`KnotServer`. ``named -g``
    (foreground, log to stderr) with ``-c`` a generated config: its own directory, no control channel
    (so it never reads ``/etc/bind/rndc.key``), no recursion, one thread."""

    name = "named"

    def config(self) -> str:
        d = self.workdir
        q = _bind_string
        key = q(self.key_name)
        return "\n".join(
            [
                "options {",
                f"  directory {q(d)};",
                f"  pid-file {q(d / 'named.pid')};",
                f"  session-keyfile {q(d / 'session.key')};",
                f"  managed-keys-directory {q(d)};",
                f"  listen-on port {int(self.dns_port)} {{ 127.0.0.1; }};",
                "  listen-on-v6 { none; };",
                f"  bindkeys-file {q(d / 'bind.keys')};",  # absent: built-in, not /etc/bind/bind.keys
                "  dnssec-validation no;",
                "  recursion no;",
                "  allow-query { any; };",
                "  notify no;",
                "};",
                "controls { };",
                f"key {key} {{",
                f"  algorithm {q(self.key_algorithm)};",
                f"  secret {q(self.key_secret)};",
                "};",
                f"zone {q(self.zone)} {{",
                "  type primary;",
                f"  file {q(d / 'zones' / (self.zone + '.zone'))};",
                f"  update-policy {{ grant {key} zonesub ANY; }};",
                f"  allow-transfer {{ key {key}; }};",
                "};",
                "",
            ]
        )

    def __enter__(self) -> BindServer:
        binary = shutil.which("named")
        assert binary, BIND_MISSING
        (self.workdir / "zones").mkdir(parents=True, exist_ok=True)
        (self.workdir / "zones" / f"{self.zone}.zone").write_text(self.zone_file())
        conf = self.workdir / "named.conf"
        conf.write_text(self.config())
        self._start([binary, "-g", "-n", "1", "-c", str(conf)], ready=self._zone_served)
        return self


class PowerDnsServer(_ServerProcess):
    """``with PowerDnsServer(tmp_path) as pdns:`` → ``pdns.api_url``, ``pdns.api_key``, ``pdns.dns_port``;
    the zone exists (created through the API as a Native zone)."""

    name = "pdns_server"

    def __init__(self, workdir: Path, zone: str = ZONE) -> None:
        super().__init__(workdir, zone)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.api_key = secrets.token_urlsafe(24)

    def __enter__(self) -> PowerDnsServer:
        binary = shutil.which("pdns_server")
        assert binary, PDNS_MISSING
        assert PDNS_SCHEMA.is_file(), PDNS_MISSING
        db = self.workdir / "pdns.sqlite3"
        with closing(sqlite3.connect(db)) as conn:
            conn.executescript(PDNS_SCHEMA.read_text())
        (self.workdir / "pdns.conf").write_text("")  # not the packaged /etc/powerdns/pdns.conf
        settings = {
            "config-dir": self.workdir,
            "socket-dir": self.workdir,
            "daemon": "no",
            "guardian": "no",
            "disable-syslog": "yes",
            "write-pid": "no",
            "local-address": "127.0.0.1",
            "local-port": self.dns_port,
            "launch": "gsqlite3",
            "gsqlite3-database": db,
            "api": "yes",
            "api-key": self.api_key,
            "webserver": "yes",
            "webserver-address": "127.0.0.1",
            "webserver-port": self.api_port,
            "webserver-allow-from": "127.0.0.0/8",
            # Answers reflect each change at once (the tests read back right after writing).
            "cache-ttl": 0,
            "query-cache-ttl": 0,
            "negquery-cache-ttl": 0,
        }
        self._start([binary, *(f"--{k}={v}" for k, v in settings.items())], ready=self._api_up)
        try:
            self._create_zone()
            wait_until(f"PowerDNS serving zone {self.zone}", self._zone_served, timeout=60)
        except BaseException:
            self.child.stop()
            raise
        return self

    def _api_up(self) -> bool:
        try:
            return httpx.get(self.api_url + "/api/v1/servers", headers={"X-API-Key": self.api_key}).is_success
        except httpx.TransportError:
            return False

    def _create_zone(self) -> None:
        z = self.zone + "."
        body = {
            "name": z,
            "kind": "Native",
            "nameservers": [f"ns1.{z}"],
            "rrsets": [
                {
                    "name": f"ns1.{z}",
                    "type": "A",
                    "ttl": 300,
                    "changetype": "REPLACE",
                    "records": [{"content": "127.0.0.1", "disabled": False}],
                }
            ],
        }
        response = httpx.post(
            self.api_url + "/api/v1/servers/localhost/zones",
            headers={"X-API-Key": self.api_key},
            json=body,
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"creating zone {z}: {response.status_code} {response.text}")
