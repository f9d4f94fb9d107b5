"""The value rules of score.dev/v1b1, each with the sentence a user sees when a value breaks it.

Patterns are applied with ``fullmatch`` and ASCII classes, which is what the specification's ECMA-262
patterns mean: ``$`` does not match before a trailing newline and ``\\d`` is only 0-9.
"""

from __future__ import annotations

import re

from yunzhou.domain.names import DNS_LABEL_RE

API_VERSIONS = ("score.dev/v1b1",)

# Score names are DNS labels of at least two characters.
NAME_RULE = (
    "must be a DNS label: 2-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
)
ANNOTATION_KEY_RE = re.compile(
    r"(?:[a-z0-9][a-z0-9-]{0,61}[a-z0-9](?:\.[a-z0-9][a-z0-9-]{0,61}[a-z0-9])*/)?"
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,61}[A-Za-z0-9]"
)
ANNOTATION_KEY_MAX = 316
ANNOTATION_KEY_RULE = (
    "must be an annotation key: an optional DNS subdomain prefix and '/', then 2-63 characters of "
    "A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit (at most 316 in all)"
)
RESOURCE_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,61}[A-Za-z0-9]")
RESOURCE_TYPE_RULE = (
    "must be 2-63 characters of A-Z, a-z, 0-9 and '-', starting and ending with a letter or digit"
)
RESOURCE_ID_RE = re.compile(r"[a-z0-9]+(?:-+[a-z0-9]+)*(?:\.[a-z0-9]+(?:-+[a-z0-9]+)*)*")
RESOURCE_ID_RULE = (
    "must be 2-63 characters: labels of a-z, 0-9 and '-' (not starting or ending with '-') joined by '.'"
)
CPU_RE = re.compile(r"[0-9]+(?:m|\.[0-9]+)?")
CPU_RULE = 'must be a CPU amount: whole or decimal CPUs like "2" or "0.5", or millicores like "250m"'
MEMORY_RE = re.compile(r"(?:0\.[0-9]+|[1-9][0-9]*(?:\.[0-9]+)?)(?:[KMGTPE]i?)?")
MEMORY_RULE = (
    "must be a memory amount: a number of bytes with an optional unit K, M, G, T, P, E or "
    'Ki, Mi, Gi, Ti, Pi, Ei, like "128M" or "1.5Gi" (no leading zeros; "0" alone is not allowed)'
)
MODE_RE = re.compile(r"0?[0-7]{3}")
MODE_RULE = 'must be an octal file mode string like "0644" or "600"'
HEADER_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
HEADER_NAME_RULE = "must be an HTTP header name of A-Z, a-z, 0-9, '_' and '-'"
VARIABLE_NAME_RULE = "variable names must not be empty and must not contain '='"
PROTOCOLS = ("TCP", "UDP")
SCHEMES = ("HTTP", "HTTPS")
READY_STATES = ("started", "healthy", "complete")
PORT_RULE = "must be an integer 1-65535"


def is_name(value: str) -> bool:
    return len(value) >= 2 and DNS_LABEL_RE.fullmatch(value) is not None


def is_annotation_key(value: str) -> bool:
    return len(value) <= ANNOTATION_KEY_MAX and ANNOTATION_KEY_RE.fullmatch(value) is not None


def is_resource_type(value: str) -> bool:
    return RESOURCE_TYPE_RE.fullmatch(value) is not None


def is_resource_id(value: str) -> bool:
    return 2 <= len(value) <= 63 and RESOURCE_ID_RE.fullmatch(value) is not None


def is_cpu(value: str) -> bool:
    return CPU_RE.fullmatch(value) is not None


def is_memory(value: str) -> bool:
    return MEMORY_RE.fullmatch(value) is not None


def is_mode(value: str) -> bool:
    return MODE_RE.fullmatch(value) is not None


def is_header_name(value: str) -> bool:
    return HEADER_NAME_RE.fullmatch(value) is not None
