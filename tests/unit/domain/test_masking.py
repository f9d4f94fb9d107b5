"""Secret values an app logs are masked, with their common encodings (issue 14, security item 8)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from yunzhou.domain.masking import MASK, MIN_LENGTH, SecretMask

SECRET = "s3cr3t/Pa55+word"  # '/' and '+' differ between base64 alphabets once encoded


def test_the_value_and_its_encodings_are_masked() -> None:
    mask = SecretMask.of([SECRET])
    for text in (
        f"API_KEY={SECRET}",
        json.dumps({"password": SECRET}),
        json.dumps({"password": 'say "' + SECRET + '"'}),
        f"postgresql://u:{quote(SECRET, safe='')}@db/x",
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
    ):
        masked = mask.apply(text)
        assert MASK in masked, text
        assert SECRET not in masked
    for user in ("u", "us", "use"):  # Basic auth: the value at every alignment inside a longer encoding
        header = "Basic " + base64.b64encode(f"{user}:{SECRET}".encode()).decode()
        masked = mask.apply(header)
        assert MASK in masked, user
        assert base64.b64decode(header[6:]).decode().endswith(SECRET)


def test_a_json_line_stays_json_with_the_field_masked() -> None:
    line = json.dumps({"msg": "connecting", "password": SECRET})
    assert json.loads(SecretMask.of([SECRET]).apply(line)) == {"msg": "connecting", "password": MASK}


def test_short_values_are_not_masked_and_the_mask_is_never_printed() -> None:
    short = "x" * (MIN_LENGTH - 1)
    mask = SecretMask.of([short, "1", ""])
    assert not mask
    assert mask.apply(f"count={short} 1") == f"count={short} 1"
    assert SECRET not in repr(SecretMask.of([SECRET]))


def test_the_longest_form_wins_and_every_line_of_a_multiline_value_is_masked() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    mask = SecretMask.of([pem, "MIIEvQ"])
    assert mask.apply("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") == MASK
    assert mask.apply("k=MIIEvQ") == f"k={MASK}"
