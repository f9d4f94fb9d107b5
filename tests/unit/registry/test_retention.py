"""The retention decision (pure): referenced images are never deleted, the newest N and the young stay."""

from __future__ import annotations

import datetime as dt

from yunzhou.registry.gc import RetentionPolicy, doomed
from yunzhou.registry.images import StoredImage

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def image(n: int, days_old: float | None, attachment_of: str | None = None) -> StoredImage:
    pushed = None if days_old is None else NOW - dt.timedelta(days=days_old)
    return StoredImage("shop/web", f"sha256:{n:064x}", 1, pushed, (), False, False, attachment_of)


def digests(images: list[StoredImage]) -> list[str]:
    return sorted(i.digest for i in images)


def test_a_referenced_image_is_never_deleted_however_old() -> None:
    images = [image(1, 900), image(2, 800), image(3, 1)]
    gone = doomed(images, {image(1, 0).digest}, RetentionPolicy(keep_last=0, keep_days=0), NOW)
    assert digests(gone) == digests([image(2, 0), image(3, 0)])


def test_the_newest_unreferenced_are_kept_and_referenced_ones_do_not_count() -> None:
    images = [image(n, 100 - n) for n in range(1, 6)]  # 5 is the newest
    gone = doomed(images, {image(5, 0).digest}, RetentionPolicy(keep_last=2, keep_days=0), NOW)
    assert digests(gone) == digests([image(1, 0), image(2, 0)])


def test_young_images_and_images_of_unknown_age_are_kept() -> None:
    images = [image(1, 10), image(2, 3), image(3, None)]
    gone = doomed(images, set(), RetentionPolicy(keep_last=0, keep_days=7), NOW)
    assert digests(gone) == digests([image(1, 0)])


def test_attachments_are_not_images() -> None:
    images = [image(1, 10), image(2, 10, attachment_of=image(1, 0).digest)]
    gone = doomed(images, set(), RetentionPolicy(keep_last=0, keep_days=0), NOW)
    assert digests(gone) == digests([image(1, 0)])


def test_policy_from_env() -> None:
    policy = RetentionPolicy.from_env(
        {"YUNZHOU_REGISTRY_KEEP_LAST": "3", "YUNZHOU_REGISTRY_KEEP_DAYS": "0.5"}
    )
    assert policy == RetentionPolicy(keep_last=3, keep_days=0.5)
    assert RetentionPolicy.from_env({}) == RetentionPolicy()
