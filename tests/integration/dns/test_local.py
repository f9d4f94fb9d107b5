"""The local provider: a marked block in a hosts file that glibc really resolves (checked with getaddrinfo
in a private mount namespace where the test's file is /etc/hosts), never touching lines it does not own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yunzhou.domain.errors import PermanentError, UserError
from yunzhou.names.dns import DnsRecord, LocalDnsProvider, LocalDnsSettings, RecordType
from yunzhou.names.dns.local import BEGIN, END

ZONE = "localhost"
APP = "orders.dev.shop.localhost"
THEIRS = "127.0.0.1\tlocalhost\n# a comment of theirs\n10.1.1.1\tmine.example orders.dev.shop.localhost\n"


def _provider(tmp_path: Path, hosts_text: str = THEIRS) -> tuple[LocalDnsProvider, Path]:
    hosts = tmp_path / "hosts"
    hosts.write_text(hosts_text)
    return LocalDnsProvider(
        LocalDnsSettings(state_file=tmp_path / "state" / "dns.json", hosts_file=hosts)
    ), hosts


def _resolve(hosts: Path, name: str) -> list[str]:
    """What getaddrinfo answers for ``name`` when ``hosts`` is /etc/hosts (a private mount namespace)."""
    program = (
        "import socket, sys\n"
        "try: infos = socket.getaddrinfo(sys.argv[1], 80, proto=socket.IPPROTO_TCP)\n"
        "except socket.gaierror: infos = []\n"
        "print(' '.join(sorted({i[4][0] for i in infos})))\n"
    )
    script = 'mount --bind "$1" /etc/hosts && exec "$2" -c "$3" "$4"'
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            hosts,
            sys.executable,
            program,
            name,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_names_resolve_through_getaddrinfo_and_their_lines_stay(tmp_path: Path) -> None:
    provider, hosts = _provider(tmp_path)

    provider.upsert(ZONE, "api.dev.shop.localhost", "A", ["127.0.0.1"], 60)
    provider.upsert(ZONE, "api.dev.shop.localhost", "AAAA", ["::1"], 60)

    assert _resolve(hosts, "api.dev.shop.localhost") == ["127.0.0.1", "::1"]
    text = hosts.read_text()
    assert text.startswith(THEIRS)  # every line of theirs, byte for byte, before the block
    assert (
        text[len(THEIRS) :]
        == f"{BEGIN}\n127.0.0.1\tapi.dev.shop.localhost\n::1\tapi.dev.shop.localhost\n{END}\n"
    )


def test_update_and_delete_rewrite_only_the_block_and_the_last_delete_removes_it(tmp_path: Path) -> None:
    provider, hosts = _provider(tmp_path, THEIRS.rstrip("\n"))  # no final newline: still kept exactly
    provider.upsert(ZONE, "api.dev.shop.localhost", "A", ["127.0.0.1"], 60)
    hosts.write_text(hosts.read_text() + "10.2.2.2\tadded.after.us\n")  # someone appends below the block

    provider.upsert(ZONE, "api.dev.shop.localhost", "A", ["127.0.0.2"], 300)
    assert _resolve(hosts, "api.dev.shop.localhost") == ["127.0.0.2"]
    assert "10.2.2.2\tadded.after.us\n" in hosts.read_text()

    provider.delete(ZONE, "api.dev.shop.localhost", "A")
    provider.delete(ZONE, "api.dev.shop.localhost", "A")  # already gone: not an error

    assert _resolve(hosts, "api.dev.shop.localhost") == []
    assert hosts.read_text() == THEIRS.rstrip("\n") + "\n10.2.2.2\tadded.after.us\n"
    assert provider.list_records(ZONE) == []


def test_list_records_keeps_every_type_and_cname_resolves_to_its_target(tmp_path: Path) -> None:
    provider, hosts = _provider(tmp_path)
    provider.upsert(ZONE, "api.dev.shop.localhost", "A", ["127.0.0.1"], 60)
    provider.upsert(ZONE, "www.shop.localhost", "CNAME", ["api.dev.shop.localhost"], 60)
    provider.upsert(ZONE, "_challenge.shop.localhost", "TXT", ["token=abc"], 60)
    provider.upsert("example.test", "a.example.test", "A", ["10.0.0.1"], 60)

    assert provider.list_records(ZONE) == [
        DnsRecord("_challenge.shop.localhost", RecordType.TXT, 60, ("token=abc",)),
        DnsRecord("api.dev.shop.localhost", RecordType.A, 60, ("127.0.0.1",)),
        DnsRecord("www.shop.localhost", RecordType.CNAME, 60, ("api.dev.shop.localhost",)),
    ]
    assert _resolve(hosts, "www.shop.localhost") == ["127.0.0.1"]
    assert "token=abc" not in hosts.read_text()  # TXT lives in the state only


def test_a_hand_edit_inside_the_block_is_undone_by_the_next_change(tmp_path: Path) -> None:
    provider, hosts = _provider(tmp_path)
    provider.upsert(ZONE, "api.dev.shop.localhost", "A", ["127.0.0.1"], 60)
    hosts.write_text(hosts.read_text().replace(f"{END}\n", f"6.6.6.6\t{APP}\n{END}\n"))

    provider.upsert(ZONE, "b.dev.shop.localhost", "A", ["127.0.0.1"], 60)

    assert "6.6.6.6" not in hosts.read_text()


@pytest.mark.parametrize(
    "broken",
    [f"{BEGIN}\n10.0.0.1\tx\n", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n"],
    ids=["begin-without-end", "end-before-begin", "two-blocks"],
)
def test_broken_markers_are_an_error_and_the_file_is_left_alone(tmp_path: Path, broken: str) -> None:
    provider, hosts = _provider(tmp_path, THEIRS + broken)

    with pytest.raises(PermanentError, match=r"markers are broken"):
        provider.upsert(ZONE, APP, "A", ["127.0.0.1"], 60)

    assert hosts.read_text() == THEIRS + broken
    assert provider.list_records(ZONE) == []


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    provider, hosts = _provider(tmp_path)

    with pytest.raises(UserError) as caught:
        provider.upsert(ZONE, "evil\n6.6.6.6 bank.example", "A", ["127.0.0.1"], 60)

    assert [p.path for p in caught.value.problems] == ["name"]
    assert hosts.read_text() == THEIRS
    assert not (tmp_path / "state" / "dns.json").exists()
