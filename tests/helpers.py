"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared"


def score(name: str = "orders", image: str = "python:3.11", **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"web": {"image": image, **container}},
        "service": {"ports": {"web": {"port": 8080}}},
    }
