"""Command line: ``python -m yunzhou.router --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 ...``."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import stat
import sys
from pathlib import Path

import uvloop

from yunzhou.domain.errors import YunzhouError
from yunzhou.router.admin import ADMIN_TOKEN_VARIABLE, MIN_ADMIN_TOKEN_LENGTH
from yunzhou.router.config import parse_address, parse_snapshot
from yunzhou.router.server import Settings, serve
from yunzhou.router.tls import NO_CERTIFICATES, load_certificates


def _address(text: str) -> tuple[str, int]:
    candidate = text.replace("localhost:", "127.0.0.1:", 1) if text.startswith("localhost:") else text
    host, _, port = candidate.rpartition(":")
    if port == "0":  # port 0: the kernel picks one; --ready-file tells which
        parsed = parse_address(f"{host}:1")
        if parsed is not None:
            return parsed[0], 0
    parsed = parse_address(candidate)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not IP:PORT, e.g. 127.0.0.1:8080")
    return parsed


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError("must be between 0 and 86400 seconds")
    return value


def _connections(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of connections 1-1000000")
    return int(text)


def admin_token(token_file: Path | None, insecure: bool) -> str | None:
    """The admin API's secret from --admin-token-file or the environment; None only with --insecure-admin.

    Raises ValueError with the one line to print."""
    from_env = os.environ.pop(ADMIN_TOKEN_VARIABLE, None)  # not passed on to anything this process starts
    if token_file is not None and from_env is not None:
        raise ValueError(f"give the admin token once: --admin-token-file or {ADMIN_TOKEN_VARIABLE}, not both")
    if insecure:
        if token_file is not None or from_env is not None:
            raise ValueError("--insecure-admin means no admin token; give one or the other, not both")
        return None
    if token_file is None:
        if from_env is None:
            raise ValueError(
                f"the admin API needs a secret: set {ADMIN_TOKEN_VARIABLE} or give --admin-token-file FILE "
                "(--insecure-admin, for development only, runs it without one)"
            )
        token = from_env.strip()
        where = ADMIN_TOKEN_VARIABLE
    else:
        where = f"--admin-token-file {token_file}"
        try:
            mode = stat.S_IMODE(token_file.stat().st_mode)
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: {getattr(exc, 'strerror', None) or exc}") from None
        if mode & 0o077:
            raise ValueError(f"{where}: other users may read it (mode {mode:04o}); chmod 600 it")
    if len(token) < MIN_ADMIN_TOKEN_LENGTH:
        raise ValueError(f"{where}: the admin token must have at least {MIN_ADMIN_TOKEN_LENGTH} characters")
    return token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m yunzhou.router",
        description="Yunzhou's local data plane: an HTTP/1.1 reverse proxy configured through its admin API.",
    )
    defaults = Settings()
    parser.add_argument("--listen", type=_address, default=defaults.listen, help="proxy address (IP:PORT)")
    parser.add_argument(
        "--also-listen",
        type=_address,
        action="append",
        default=[],
        help="another proxy address (IP:PORT, port 0: the --listen port); repeatable",
    )
    parser.add_argument(
        "--tls-listen",
        type=_address,
        help="HTTPS address (IP:PORT): TLS terminated here, certificates from the snapshot chosen by SNI",
    )
    parser.add_argument("--admin", type=_address, default=defaults.admin, help="admin API address, loopback")
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        help=f"file (mode 0600) holding the admin API's bearer token; or set {ADMIN_TOKEN_VARIABLE}",
    )
    parser.add_argument(
        "--insecure-admin", action="store_true", help="development only: the admin API takes no token"
    )
    parser.add_argument("--config", type=Path, help="JSON snapshot to start with")
    parser.add_argument("--access-log", metavar="FILE|-", help="JSON-lines access log; '-' for stdout")
    parser.add_argument("--ready-file", type=Path, help="write {pid, listen, admin} here once listening")
    parser.add_argument("--upstream-timeout", type=_seconds, default=defaults.upstream_timeout)
    parser.add_argument("--connect-timeout", type=_seconds, default=defaults.connect_timeout)
    parser.add_argument("--client-idle-timeout", type=_seconds, default=defaults.client_idle_timeout)
    parser.add_argument(
        "--header-timeout", type=_seconds, default=defaults.header_timeout, help="whole request head → 408"
    )
    parser.add_argument(
        "--body-timeout", type=_seconds, default=defaults.body_timeout, help="idle between body bytes → 408"
    )
    parser.add_argument(
        "--max-connections-per-client",
        type=_connections,
        default=defaults.max_connections_per_client,
        help="open connections from one client address; more are answered 429 and closed",
    )
    parser.add_argument("--grace", type=_seconds, default=defaults.grace, help="SIGTERM drain limit")
    parser.add_argument(
        "--tunnel-idle-timeout",
        type=_seconds,
        default=defaults.tunnel_idle_timeout,
        help="an upgraded (WebSocket) connection with no byte either way for this long is closed",
    )
    parser.add_argument(
        "--acme-challenges",
        type=Path,
        metavar="DIR",
        help="answer ACME HTTP-01 (GET /.well-known/acme-challenge/TOKEN over plain HTTP) from DIR/TOKEN",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s yunzhou-router: %(message)s",
        stream=sys.stderr,
    )
    if not ipaddress.ip_address(args.admin[0]).is_loopback:
        print("yunzhou-router: --admin must be a loopback address (127.0.0.0/8 or ::1)", file=sys.stderr)
        return 2
    try:
        token = admin_token(args.admin_token_file, args.insecure_admin)
    except ValueError as exc:
        print(f"yunzhou-router: {exc}", file=sys.stderr)
        return 2
    if token is None:
        warning = "--insecure-admin: any process on this host may use the admin API"
        logging.getLogger("yunzhou.router").warning(warning)
    if args.config is not None:  # fail before listening, with the field that is wrong
        try:
            snapshot = parse_snapshot(json.loads(args.config.read_text(encoding="utf-8")))
            load_certificates(snapshot.certificates, NO_CERTIFICATES)
        except (OSError, ValueError, YunzhouError) as exc:
            print(f"yunzhou-router: --config {args.config}: {exc}", file=sys.stderr)
            return 2
    if args.access_log not in (None, "-"):
        try:
            Path(args.access_log).open("a", encoding="utf-8").close()
        except OSError as exc:
            print(f"yunzhou-router: --access-log {args.access_log}: {exc.strerror}", file=sys.stderr)
            return 2
    settings = Settings(
        listen=args.listen,
        also_listen=tuple(args.also_listen),
        admin=args.admin,
        tls_listen=args.tls_listen,
        admin_token=token,
        config_file=args.config,
        access_log=args.access_log,
        ready_file=args.ready_file,
        upstream_timeout=args.upstream_timeout,
        connect_timeout=args.connect_timeout,
        client_idle_timeout=args.client_idle_timeout,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections_per_client=args.max_connections_per_client,
        grace=args.grace,
        tunnel_idle_timeout=args.tunnel_idle_timeout,
        acme_challenges=args.acme_challenges.absolute() if args.acme_challenges else None,
    )
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve(settings))
    except OSError as exc:  # e.g. the port is taken
        print(f"yunzhou-router: {exc}", file=sys.stderr)
        return 1
