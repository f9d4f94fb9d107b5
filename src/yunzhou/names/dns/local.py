"""The local target's provider: names resolve on this machine through a marked block in a hosts file.

Why a hosts block: every resolver on the machine (glibc's getaddrinfo through nsswitch ``files``, curl,
browsers, Python) reads ``/etc/hosts`` first, with no daemon to run and nothing to reconfigure; the names
the local target makes (``{app}.{env}.{project}.localhost``) need no more than A/AAAA. Instances already
resolve route names through the ``/etc/hosts`` their runtime writes (docs/local-runtime.md).

- The records (every type, with TTLs) live in a JSON state file; the block is rendered from it whole on
  every change, so the block never drifts from the state and a hand edit inside it is undone.
- Only the lines between the markers are ever written; every other line stays byte for byte. When the last
  record goes, the block goes too. A marker without its partner is an error, not a guess.
- A and AAAA become lines; a CNAME becomes lines for its target's addresses when the target is a record
  here (a hosts file has no aliases to other names); TXT is kept in the state only (getaddrinfo has no TXT).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from yunzhou.domain.errors import PermanentError
from yunzhou.names.dns.records import DnsRecord, RecordType, check_name, check_record, check_type, check_zone

BEGIN = "# BEGIN yunzhou names (written by yunzhou from its DNS records; edits inside this block are lost)"
END = "# END yunzhou names"
_BEGIN_PREFIX = "# BEGIN yunzhou names"
_CNAME_DEPTH = 8


@dataclass(frozen=True)
class LocalDnsSettings:
    """``state_file``: the records (JSON, under the data dir); ``hosts_file``: where the block goes."""

    state_file: Path
    hosts_file: Path = Path("/etc/hosts")


class LocalDnsProvider:
    """:class:`yunzhou.names.dns.DnsProvider` for the local target (see the module's docstring)."""

    def __init__(self, settings: LocalDnsSettings) -> None:
        self.settings = settings

    def list_records(self, zone: str) -> list[DnsRecord]:
        origin = check_zone(zone)
        with self._locked():
            return [r for r in self._load() if _in_zone(r.name, origin)]

    def upsert(self, zone: str, name: str, type: str, values: Iterable[str], ttl: int) -> DnsRecord:
        record = check_record(zone, name, type, values, ttl)
        with self._locked():
            records = [r for r in self._load() if (r.name, r.type) != (record.name, record.type)]
            self._save([*records, record])
        return record

    def delete(self, zone: str, name: str, type: str) -> None:
        absolute = check_name(name, check_zone(zone))
        type_ = check_type(type)
        with self._locked():
            records = self._load()
            kept = [r for r in records if (r.name, r.type) != (absolute, type_)]
            if len(kept) != len(records):
                self._save(kept)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across processes (the server and a CLI, or two workers)."""
        lock_path = self.settings.state_file.with_name(self.settings.state_file.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _load(self) -> list[DnsRecord]:
        try:
            data = json.loads(self.settings.state_file.read_text())
            return [
                DnsRecord(r["name"], RecordType(r["type"]), int(r["ttl"]), tuple(r["values"]))
                for r in data["records"]
            ]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as e:
            raise PermanentError(f"local DNS state {self.settings.state_file} is unreadable: {e}") from e

    def _save(self, records: list[DnsRecord]) -> None:
        ordered = sorted(records, key=lambda r: (r.name, r.type))
        hosts = self.settings.hosts_file
        try:
            current = hosts.read_text()
        except FileNotFoundError:
            current = ""
        updated = splice_block(current, render_block(ordered), where=str(hosts))
        if updated != current:  # first: a hosts file we cannot write leaves the state as it was
            _write_hosts(hosts, updated)
        state = {"version": 1, "records": [_as_json(r) for r in ordered]}
        _write_atomically(self.settings.state_file, json.dumps(state, indent=1) + "\n")


def render_block(records: list[DnsRecord]) -> list[str]:
    """The block's lines (markers included), or [] when no record gives an address."""
    addresses = {(r.name, r.type): r.values for r in records if r.type in (RecordType.A, RecordType.AAAA)}
    cnames = {r.name: r.values[0] for r in records if r.type is RecordType.CNAME}
    lines = []
    for name in sorted({n for n, _ in addresses} | set(cnames)):
        target = name
        for _ in range(_CNAME_DEPTH):  # follow aliases to names with addresses, never forever
            if (target, RecordType.A) in addresses or (target, RecordType.AAAA) in addresses:
                break
            if target not in cnames:
                break
            target = cnames[target]
        for type_ in (RecordType.A, RecordType.AAAA):
            lines += [f"{address}\t{name}" for address in addresses.get((target, type_), ())]
    return [BEGIN, *lines, END] if lines else []


def splice_block(text: str, block: list[str], where: str) -> str:
    """``text`` with its yunzhou block replaced by ``block`` (appended when absent, dropped when empty);
    every line outside the markers is kept exactly."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.startswith(_BEGIN_PREFIX)]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == END]
    if len(begins) > 1 or len(ends) > 1 or len(begins) != len(ends) or (begins and ends[0] < begins[0]):
        raise PermanentError(
            f"{where}: the yunzhou block's markers are broken ({len(begins)} BEGIN, {len(ends)} END lines); "
            f"fix or remove the lines between {_BEGIN_PREFIX!r} and {END!r} by hand"
        )
    new = [line + "\n" for line in block]
    if begins:
        return "".join(lines[: begins[0]] + new + lines[ends[0] + 1 :])
    if not new:
        return text
    separator = "" if not text or text.endswith("\n") else "\n"
    return text + separator + "".join(new)


def _in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _as_json(record: DnsRecord) -> dict[str, object]:
    return {"name": record.name, "type": record.type.value, "ttl": record.ttl, "values": list(record.values)}


def _write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_hosts(path: Path, text: str) -> None:
    """Replace the hosts file atomically, keeping its mode; a bind-mounted one (a container's) cannot be
    renamed over, so it is rewritten in place."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    try:
        _write_atomically(path, text, mode)
    except OSError as e:
        if not path.is_file():
            raise PermanentError(f"cannot write {path}: {e}") from e
        try:
            path.write_text(text)
        except OSError as e2:
            raise PermanentError(f"cannot write {path}: {e2}") from e2
