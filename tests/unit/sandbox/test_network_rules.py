"""The iptables-restore input Network builds from its state (pure): order decides what is allowed."""

from __future__ import annotations

from yunzhou.sandbox.network import Network, names_for


def rules(attachments: dict[str, dict[str, object]], ports: list[int]) -> list[str]:
    return Network()._rules({"attachments": attachments, "ports": ports}).splitlines()


def chain(lines: list[str], name: str) -> list[str]:
    return [line.removeprefix(f"-A {name} ") for line in lines if line.startswith(f"-A {name} ")]


def test_input_from_the_bridge_accepts_replies_then_allowed_gateway_ports_then_drops() -> None:
    lines = rules({}, [8443, 8080])
    assert chain(lines, "YZ-INPUT") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-d 10.213.0.1/32 -p tcp --dport 8080 -j ACCEPT",
        "-d 10.213.0.1/32 -p tcp --dport 8443 -j ACCEPT",
        "-j DROP",
    ]


def test_forward_allows_egress_per_address_only_for_attachments_with_egress() -> None:
    attachments = {"a": {"ip": "10.213.0.2", "egress": True}, "b": {"ip": "10.213.0.3", "egress": False}}
    forward = chain(rules(attachments, []), "YZ-FORWARD")
    assert forward[0] == "-o yzbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    assert forward[1] == (
        f'-s 10.213.0.2/32 -i yzbr0 ! -o yzbr0 -m comment --comment "yunzhou {names_for("a")[0]}" -j ACCEPT'
    )
    assert forward[2:] == ["-i yzbr0 -j DROP", "-o yzbr0 -j DROP"]
    assert not any("10.213.0.3" in line for line in forward)


def test_chains_are_declared_so_restore_flushes_them_and_the_subnet_is_masqueraded() -> None:
    lines = rules({}, [])
    assert lines[:3] == ["*filter", ":YZ-INPUT - [0:0]", ":YZ-FORWARD - [0:0]"]
    assert ":YZ-POSTROUTING - [0:0]" in lines
    assert chain(lines, "YZ-POSTROUTING") == ["-s 10.213.0.0/16 ! -o yzbr0 -j MASQUERADE"]
    assert lines.count("COMMIT") == 2


def test_names_fit_linux_interface_names() -> None:
    netns, host_end, peer = names_for("x" * 200)
    assert max(len(host_end), len(peer)) <= 15
    assert netns.startswith("yz-")
    assert names_for("a") != names_for("b")
