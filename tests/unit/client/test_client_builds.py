"""Following a build's log survives a cut connection: it reconnects from the last offset it printed."""

from __future__ import annotations

import json

import httpx
import pytest

from yunzhou.client import ApiError, YunzhouClient


def test_following_reconnects_from_the_last_offset_after_a_cut_stream() -> None:
    asked: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        offset = request.url.params.get("offset")
        asked.append(offset)
        if offset == "0":  # cut after the first chunk: no closing line
            lines = [{"offset": 0, "text": "step 1\n", "next_offset": 7}, {"offset": 7, "text": ""}]
        else:
            end = {"done": True, "state": "succeeded", "error": "", "release": 2, "next_offset": 14}
            lines = [{"offset": 7, "text": "step 2\n", "next_offset": 14}, end]
        body = "".join(json.dumps(line) + "\n" for line in lines)
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": "application/x-ndjson"})

    slept: list[float] = []
    client = YunzhouClient("http://yz.test", "t", transport=httpx.MockTransport(handle), sleep=slept.append)
    chunks = list(client.follow_build_log("b000000000001"))
    assert [c.get("text") for c in chunks] == ["step 1\n", "step 2\n", None]
    assert chunks[-1]["release"] == 2
    assert asked == ["0", "7"]
    assert slept == []  # an early end is resumed at once; only errors wait


def test_following_an_unknown_build_is_the_apis_404() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        error = {"code": "not_found", "message": "build 'b000000000009' not found", "problems": []}
        return httpx.Response(404, json={"error": error})

    client = YunzhouClient("http://yz.test", "t", transport=httpx.MockTransport(handle))
    with pytest.raises(ApiError) as raised:
        list(client.follow_build_log("b000000000009"))
    assert raised.value.status == 404
    assert "build 'b000000000009' not found" in str(raised.value)
