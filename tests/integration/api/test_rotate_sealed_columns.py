"""`secret rotate-key` re-seals every credential the platform keeps sealed, so none of them stops opening
when the old key is retired: cluster image-pull credentials and DNS provider secrets as well as secrets."""

from __future__ import annotations

from sqlalchemy import select

from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.pull_credentials import PullCredentialService
from yunzhou.store.crypto import SecretBox
from yunzhou.store.models import DnsProviderRow, PullCredential

SETTINGS = {"zones": ["example.test"], "server": "127.0.0.1", "port": 5353, "key_name": "yunzhou"}


def test_pull_credentials_and_dns_provider_secrets_still_open_after_the_key_is_rotated(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    box = cp.ctx.secret_box
    assert box is not None
    cp.projects.create(SYSTEM, "shop")
    pulls = PullCredentialService(cp.ctx, box)
    login = pulls.ensure("shop")
    cp.names.add_provider(SYSTEM, "corp", "rfc2136", SETTINGS, "c2VjcmV0")
    with cp.ctx.db.transaction() as s:
        before = {
            "pull": SecretBox.sealed_key_id(s.scalars(select(PullCredential.secret_ciphertext)).one()),
            "dns": SecretBox.sealed_key_id(s.scalars(select(DnsProviderRow.secret_ciphertext)).one() or ""),
        }

    rotated = cp.config.rotate_key(SYSTEM)
    assert rotated["retired"] == [before["pull"]] == [before["dns"]]
    assert pulls.ensure("shop") == login  # the same credential, opened with the new key
    with cp.ctx.db.transaction() as s:
        sealed = s.scalars(select(DnsProviderRow.secret_ciphertext)).one()
        assert sealed is not None
        assert SecretBox.sealed_key_id(sealed) == rotated["key"]
        assert box.open(sealed) == b"c2VjcmV0"
