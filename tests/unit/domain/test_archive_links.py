"""The archive rule for symlinks on its own (issue 14, item 5, reviewer's bypass): each link is resolved as
the kernel would, through the archive's other links (also those that come later), so a chain of links
that each stay inside on their own cannot lead out, and a loop or more than 40 hops is refused."""

from __future__ import annotations

import tarfile

import pytest

from yunzhou.domain.archive import MAX_LINK_HOPS, ArchiveChecker
from yunzhou.domain.errors import UserError
from yunzhou.domain.limits import Limits

# the reviewer's archive: each link alone stays lexically inside; through 'a/up' (the root) 'x' is /tmp/x
ESCAPING_CHAIN = [("a", ""), ("a/up", ".."), ("x", "a/up/" * 8 + "../" * 16 + "tmp/x")]


def _check(*members: tuple[str, str]) -> None:
    """(name, link target) pairs, in archive order; an empty target is a folder."""
    checker = ArchiveChecker(Limits())
    for name, target in members:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = (tarfile.SYMTYPE, target) if target else (tarfile.DIRTYPE, "")
        checker.admit(info)
    checker.finish()


def _refused(*members: tuple[str, str]) -> str:
    with pytest.raises(UserError) as caught:
        _check(*members)
    assert caught.value.code == "invalid"
    assert [p.path for p in caught.value.problems] == ["body"]
    return caught.value.message


def test_each_link_alone_stays_inside_the_chain_does_not() -> None:
    checker = ArchiveChecker(Limits())
    for name, target in ESCAPING_CHAIN:  # member by member, nothing is wrong yet
        info = tarfile.TarInfo(name)
        info.type, info.linkname = (tarfile.SYMTYPE, target) if target else (tarfile.DIRTYPE, "")
        checker.admit(info)
    with pytest.raises(UserError, match=r"symlink 'x' points outside the archive .*other links"):
        checker.finish()


def test_a_link_through_a_link_defined_later_is_refused() -> None:
    message = _refused(("x", "a/up/.."), ("a", ""), ("a/up", ".."))
    assert message.startswith("body: symlink 'x' points outside the archive ('a/up/..'")


@pytest.mark.parametrize(
    "members",
    [
        [("a", "b"), ("b", "a")],
        [("self", "self")],
        [("d", ""), ("d/loop", "../d/loop/x")],
    ],
)
def test_a_loop_is_refused_naming_the_hop_limit(members: list[tuple[str, str]]) -> None:
    message = _refused(*members)
    assert f"does not resolve: it loops or needs more than {MAX_LINK_HOPS} links followed" in message
    assert f"(the limit is {MAX_LINK_HOPS})" in message


def test_more_than_40_hops_is_refused_and_40_pass() -> None:
    chain = [(f"l{n}", f"l{n + 1}") for n in range(MAX_LINK_HOPS)]  # l0 → … → l40 (dangling): 40 links
    _check(*chain)
    assert "symlink 'l0' does not resolve" in _refused(*chain, ("l40", "l41"))


def test_links_inside_the_tree_pass() -> None:
    _check(
        ("bin", ""),
        ("bin/tool", "../lib/tool.py"),  # the file comes later or not at all: still inside
        ("current", "releases/v2"),
        ("releases/v2", ""),
        ("previous", "current/../v1"),  # '..' from where 'current' leads: releases/v1
        ("releases/v2/up", "../../bin/"),
        ("again", "current/up/tool"),
    )


def test_a_link_that_is_also_a_folder_of_earlier_members_is_refused() -> None:
    # 'a/x' first, then 'a' as a link: 'a/x' would land wherever 'a' leads
    message = _refused(("a/x", "../y"), ("a", "b"))
    assert "'a' is a symlink and a folder of other members" in message


def test_a_link_target_longer_than_the_kernel_takes_is_refused() -> None:
    assert "has a target over 4095 bytes (the limit)" in _refused(("long", "a/" * 2048))
