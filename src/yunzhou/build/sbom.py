"""What an image holds, as an SPDX 2.3 JSON document (content only; ``registry.sbom`` attaches it).

Three sources: the Debian packages of the stack (its ``/var/lib/dpkg/status``), the Python
distributions of the app's venv (``*.dist-info/METADATA``) and the Node packages npm installed
(``node_modules/.package-lock.json``, which npm writes for what is really on disk, dev packages left
out). The document is deterministic: packages sorted, SPDX ids numbered in that order, one fixed
``created`` time (the epoch every layer uses), and a namespace derived from the image digest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

CREATED = "1970-01-01T00:00:00Z"
NAMESPACE_PREFIX = "urn:yunzhou:spdx:"  # a URN: no host name, unique per image digest


@dataclass(frozen=True, order=True)
class Package:
    """One installed package: ``kind`` is ``deb``, ``pypi`` or ``npm`` (the purl type)."""

    kind: str
    name: str
    version: str
    arch: str = ""

    def purl(self) -> str:
        if self.kind == "deb":
            qualifiers = f"?arch={quote(self.arch)}&distro=debian" if self.arch else "?distro=debian"
            return f"pkg:deb/debian/{quote(self.name)}@{quote(self.version)}{qualifiers}"
        if self.kind == "npm" and self.name.startswith("@") and "/" in self.name:
            scope, name = self.name.split("/", 1)
            return f"pkg:npm/{quote(scope)}/{quote(name)}@{quote(self.version)}"
        name = self.name.lower().replace("_", "-") if self.kind == "pypi" else self.name
        return f"pkg:{self.kind}/{quote(name)}@{quote(self.version)}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Package:
        return cls(str(raw["kind"]), str(raw["name"]), str(raw["version"]), str(raw.get("arch", "")))


def parse_dpkg_status(text: str) -> list[Package]:
    """The installed packages of a ``/var/lib/dpkg/status`` file."""
    found: list[Package] = []
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # a continuation line (descriptions, conffiles)
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            found.append(
                Package("deb", fields["Package"], fields.get("Version", ""), fields.get("Architecture", ""))
            )
    return sorted(found)


def parse_dist_metadata(text: str) -> Package | None:
    """A Python distribution from its ``METADATA`` (email-header format)."""
    headers = HeaderParser().parsestr(text, headersonly=True)
    name, version = headers.get("Name"), headers.get("Version")
    return Package("pypi", str(name), str(version)) if name and version else None


def read_inside(root: Path, path: Path) -> bytes | None:
    """``path``'s content when it is a regular file reached from ``root`` through no symbolic link (a build
    step wrote these folders: a link could point anywhere on the host), else None."""
    expected = Path(os.path.realpath(root)) / path.relative_to(root)
    if Path(os.path.realpath(path)) != expected or not path.is_file():
        return None
    return path.read_bytes()


def venv_packages(venv: Path) -> list[Package]:
    """The distributions installed in ``venv`` (pip, setuptools and the app's dependencies)."""
    found = []
    for metadata in sorted(venv.glob("lib/python*/site-packages/*.dist-info/METADATA")):
        content = read_inside(venv, metadata)
        package = parse_dist_metadata(content.decode(errors="replace")) if content is not None else None
        if package is not None:
            found.append(package)
    return sorted(set(found))


def parse_npm_lock(content: bytes) -> list[Package]:
    """The packages of an npm lockfile (v2/v3 ``packages``), dev-only ones and the root left out."""
    try:
        doc = json.loads(content)
    except ValueError:
        return []
    packages = doc.get("packages") if isinstance(doc, dict) else None
    if not isinstance(packages, dict):
        return []
    found = set()
    for path, entry in packages.items():
        if not path or not isinstance(entry, dict) or entry.get("dev") or entry.get("link"):
            continue
        name = entry.get("name") or path.rsplit("node_modules/", 1)[-1]
        found.add(Package("npm", str(name), str(entry.get("version", ""))))
    return sorted(found)


def spdx_document(name: str, image_digest: str, packages: Iterable[Package]) -> bytes:
    """The SPDX 2.3 JSON document for the image ``image_digest`` called ``name``."""
    ordered = sorted(set(packages))
    image_id = "SPDXRef-Image"
    spdx_packages: list[dict[str, Any]] = [
        {
            "SPDXID": image_id,
            "name": name,
            "versionInfo": image_digest,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
    ]
    for number, package in enumerate(ordered, start=1):
        package_id = f"SPDXRef-{package.kind}-{number}"
        spdx_packages.append(
            {
                "SPDXID": package_id,
                "name": package.name,
                "versionInfo": package.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": package.purl(),
                    }
                ],
            }
        )
        relationships.append(
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": package_id}
        )
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{name}@{image_digest}",
        "documentNamespace": NAMESPACE_PREFIX + image_digest.removeprefix("sha256:"),
        "creationInfo": {"created": CREATED, "creators": ["Tool: yunzhou"]},
        "packages": spdx_packages,
        "relationships": relationships,
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"
