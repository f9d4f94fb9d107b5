"""Command line: ``python -m yunzhou.router --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 ...``."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import sys
from pathlib import Path

import uvloop

from yunzhou.domain.errors import YunzhouError
from yunzhou.router.config import parse_address, parse_snapshot
from yunzhou.router.server import Settings, serve


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m yunzhou.router",
        description="Yunzhou's local data plane: an HTTP/1.1 reverse proxy configured through its admin API.",
    )
    defaults = Settings()
    parser.add_argument("--listen", type=_address, default=defaults.listen, help="proxy address (IP:PORT)")
    parser.add_argument("--admin", type=_address, default=defaults.admin, help="admin API address, loopback")
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
    if args.config is not None:  # fail before listening, with the field that is wrong
        try:
            parse_snapshot(json.loads(args.config.read_text(encoding="utf-8")))
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
        admin=args.admin,
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
    )
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve(settings))
    except OSError as exc:  # e.g. the port is taken
        print(f"yunzhou-router: {exc}", file=sys.stderr)
        return 1
