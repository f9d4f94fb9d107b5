"""A client of the OCI Distribution API (docker-registry 2.8 and any registry that speaks it), over httpx.

It pushes images from an ``ImageStore`` (each blob is asked for with HEAD first and skipped when the
registry has it; uploads stream from the blob file, in one PUT or in PATCH chunks), pulls them into one
(digests are checked while the bytes stream in: a wrong blob is never stored), resolves tags, lists and
deletes, and reads or writes manifests of any media type (signatures and SBOMs are manifests too).

Authentication follows the registry token scheme: a ``401`` with ``WWW-Authenticate: Bearer
realm=…,service=…,scope=…`` makes the client ask the realm for a token (with basic auth when it has a
username and password), keep it per scope, and retry the request once. Errors are translated here:
a refusal, an unknown repository or reference → ``UserError`` naming it (``code`` ``denied`` or
``not_found``); a connection failure or a 5xx → ``TemporaryError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from yunzhou.build.oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    ImageStore,
    canonical_json,
    check_digest,
    platform_manifest,
)
from yunzhou.domain.errors import PermanentError, TemporaryError, UserError
from yunzhou.registry.client_http import RegistryAuth, error_for

__all__ = ["MANIFEST_TYPES", "Manifest", "PushResult", "RegistryClient"]

MANIFEST_TYPES = (MEDIA_MANIFEST, MEDIA_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
_ACCEPT = ", ".join(MANIFEST_TYPES)
_INDEX_TYPES = (MEDIA_INDEX, DOCKER_MANIFEST_LIST)
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PIECE = 1 << 20
_MANIFEST_LIMIT = 4 << 20  # docker-registry's own limit is 4 MiB
DEFAULT_CHUNK_SIZE = 64 << 20  # blobs larger than this go up in PATCH chunks of this size


@dataclass(frozen=True)
class Manifest:
    body: bytes  # exactly as the registry serves it: its sha256 is the digest
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        doc = json.loads(self.body)
        if not isinstance(doc, dict):
            raise UserError(f"manifest {self.digest} is not a JSON object")
        return doc


@dataclass(frozen=True)
class PushResult:
    digest: str
    uploaded: tuple[str, ...]  # blobs sent
    skipped: tuple[str, ...]  # blobs the registry already had (or mounted from another repository)


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 60.0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = RegistryAuth(username, password)
        self._chunk_size = chunk_size
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            verify=verify,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- manifests -----------------------------------------------------------------------------------

    def resolve(self, repo: str, reference: str) -> str:
        """The manifest digest ``repo:reference`` names now (HEAD; GET and hash when no digest header)."""
        what = _what(repo, reference)
        r = self._send("HEAD", _manifest_path(repo, reference), what, headers={"Accept": _ACCEPT})
        digest = r.headers.get("Docker-Content-Digest")
        if digest:
            return check_digest(digest)
        return self.get_manifest(repo, reference).digest

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        what = _what(repo, reference)
        headers = {"Accept": _ACCEPT}
        body, content_type = self._read_limited(_manifest_path(repo, reference), what, headers=headers)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise PermanentError(f"registry served manifest {what} with content of digest {digest}")
        media_type = content_type.split(";")[0].strip()
        manifest = Manifest(body=body, media_type=media_type, digest=digest)
        if media_type not in MANIFEST_TYPES:
            manifest = Manifest(body, str(manifest.json().get("mediaType") or MEDIA_MANIFEST), digest)
        return manifest

    def put_manifest(
        self, repo: str, reference: str, body: bytes | Mapping[str, Any], media_type: str = MEDIA_MANIFEST
    ) -> str:
        """Store a manifest (bytes as given, or a mapping as canonical JSON); returns its digest."""
        data = body if isinstance(body, bytes) else canonical_json(body)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._send(
            "PUT",
            _manifest_path(repo, reference),
            _what(repo, reference),
            push=True,
            headers={"Content-Type": media_type},
            content=lambda: data,
        )
        return digest

    def delete(self, repo: str, digest: str) -> None:
        """Delete the manifest ``digest`` (and so every tag on it); its blobs go at garbage collection."""
        check_digest(digest)
        path = _manifest_path(repo, digest)
        self._send("DELETE", path, _what(repo, digest), scope=f"repository:{repo}:delete")

    def tags(self, repo: str) -> list[str]:
        """Every tag of ``repo`` (following pagination); an unknown repository has none."""
        path: str | None = f"/v2/{_repo(repo)}/tags/list?n=1000"
        found: list[str] = []
        while path:
            r = self._send("GET", path, repo, missing_ok=True)
            if r.status_code == 404:
                return []
            found.extend(r.json().get("tags") or [])
            path = _next_link(r)
        return found

    def repositories(self) -> list[str]:
        path: str | None = "/v2/_catalog?n=1000"
        found: list[str] = []
        while path:
            r = self._send("GET", path, "the registry catalog", scope="registry:catalog:*")
            found.extend(r.json().get("repositories") or [])
            path = _next_link(r)
        return found

    # --- blobs ---------------------------------------------------------------------------------------

    def has_blob(self, repo: str, digest: str) -> bool:
        r = self._send("HEAD", f"/v2/{_repo(repo)}/blobs/{check_digest(digest)}", repo, missing_ok=True)
        return r.status_code != 404

    def get_blob(self, repo: str, digest: str, *, limit: int = _MANIFEST_LIMIT) -> bytes:
        """A small blob (a signature payload, an SBOM) in memory, checked against its digest."""
        what = _what(repo, digest)
        body, _ = self._read_limited(f"/v2/{_repo(repo)}/blobs/{check_digest(digest)}", what, limit=limit)
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise PermanentError(f"registry served blob {what} with other content")
        return body

    def _read_limited(
        self, path: str, what: str, *, limit: int = _MANIFEST_LIMIT, headers: Mapping[str, str] | None = None
    ) -> tuple[bytes, str]:
        """GET a small document without ever holding more than ``limit`` bytes; (body, Content-Type)."""
        body = bytearray()
        with self._stream("GET", path, what, headers=headers) as r:
            try:
                for piece in r.iter_bytes(_PIECE):
                    body += piece
                    if len(body) > limit:
                        raise UserError(f"registry document {what} is larger than {limit} bytes")
            except httpx.TransportError as exc:
                raise TemporaryError(f"registry {self.base_url}: {what}: {exc}") from None
            return bytes(body), r.headers.get("Content-Type", "")

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(repo, digest):
            location = self._start_upload(repo, None)
            assert location is not None, "an upload without mount always opens a session"
            self._finish_upload(repo, location, digest, 0, len(data), lambda: [data])
        return digest

    # --- whole images --------------------------------------------------------------------------------

    def push(
        self,
        store: ImageStore,
        repo: str,
        digest: str,
        tag: str | None = None,
        *,
        mount_from: str | None = None,
    ) -> PushResult:
        """Push the image (or index) ``digest`` from ``store`` to ``repo`` (under ``tag`` when given)."""
        uploaded: list[str] = []
        skipped: list[str] = []
        self._push_manifest(store, repo, digest, tag or digest, mount_from, (uploaded, skipped))
        return PushResult(digest=digest, uploaded=tuple(uploaded), skipped=tuple(skipped))

    def pull(self, repo: str, reference: str, store: ImageStore, *, name: str | None = None) -> str:
        """Fetch ``repo:reference`` into ``store`` (blobs it has are not fetched); returns the digest.

        For an index, the index and the manifest for this machine's platform are fetched.
        """
        manifest = self.get_manifest(repo, reference)
        self._pull_manifest(repo, manifest, store)
        if name is not None:
            store.tag(name, manifest.digest)
        return manifest.digest

    def _pull_manifest(self, repo: str, manifest: Manifest, store: ImageStore) -> None:
        doc = manifest.json()
        if manifest.media_type in _INDEX_TYPES or "manifests" in doc:
            child = platform_manifest(doc)
            if child is None:
                raise UserError(f"{repo}@{manifest.digest} has no image for this machine's platform")
            self._pull_manifest(repo, self.get_manifest(repo, child), store)
        else:
            for blob in [doc.get("config"), *doc.get("layers", [])]:
                if isinstance(blob, dict):
                    self._pull_blob(repo, check_digest(str(blob.get("digest"))), store)
        store.put_bytes(manifest.body)

    def _pull_blob(self, repo: str, digest: str, store: ImageStore) -> None:
        if store.has(digest):
            return
        what = _what(repo, digest)
        with self._stream("GET", f"/v2/{_repo(repo)}/blobs/{digest}", what) as r:
            try:
                store.put_stream(r.iter_bytes(_PIECE), expected_digest=digest)
            except httpx.TransportError as exc:
                raise TemporaryError(
                    f"registry {self.base_url}: download of {what} broke off: {exc}"
                ) from None

    def _push_manifest(
        self,
        store: ImageStore,
        repo: str,
        digest: str,
        reference: str,
        mount_from: str | None,
        tally: tuple[list[str], list[str]],
    ) -> None:
        """Blobs (or child manifests) first, then the manifest itself under ``reference``."""
        doc = store.manifest(digest)
        if "manifests" in doc:
            for child in doc["manifests"]:
                child_digest = check_digest(str(child.get("digest")))
                if store.has(child_digest):
                    self._push_manifest(store, repo, child_digest, child_digest, mount_from, tally)
        else:
            for blob in [doc["config"], *doc.get("layers", [])]:
                blob_digest = check_digest(str(blob.get("digest")))
                sent = self._push_blob(store, repo, blob_digest, mount_from)
                tally[0 if sent else 1].append(blob_digest)
        media_type = doc.get("mediaType") or MEDIA_MANIFEST
        self.put_manifest(repo, reference, store.blob_path(digest).read_bytes(), media_type)

    def _push_blob(self, store: ImageStore, repo: str, digest: str, mount_from: str | None) -> bool:
        """Upload one blob unless the registry has it (or mounts it); True when bytes were sent."""
        if self.has_blob(repo, digest):
            return False
        location = self._start_upload(repo, (digest, mount_from) if mount_from else None)
        if location is None:
            return False
        path = store.blob_path(digest)
        size = path.stat().st_size
        offset = 0
        while size - offset > self._chunk_size:  # PATCH all but the last piece; PUT sends the rest
            end = offset + self._chunk_size
            location = self._patch(repo, location, path, offset, end)
            offset = end
        self._finish_upload(repo, location, digest, offset, size, lambda: _file_pieces(path, offset, size))
        return True

    # --- uploads -------------------------------------------------------------------------------------

    def _start_upload(self, repo: str, mount: tuple[str, str] | None) -> str | None:
        """Open an upload session; None when ``mount`` = (digest, from repository) mounted the blob."""
        params = {"mount": mount[0], "from": _repo(mount[1])} if mount else None
        r = self._send("POST", f"/v2/{_repo(repo)}/blobs/uploads/", repo, push=True, params=params)
        if r.status_code == 201:
            return None
        return _location(r, repo)

    def _patch(self, repo: str, location: str, path: Path, start: int, end: int) -> str:
        r = self._send(
            "PATCH",
            location,
            repo,
            push=True,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(end - start),
                "Content-Range": f"{start}-{end - 1}",
            },
            content=lambda: _file_pieces(path, start, end),
        )
        return _location(r, repo)

    def _finish_upload(
        self,
        repo: str,
        location: str,
        digest: str,
        start: int,
        end: int,
        pieces: Callable[[], Iterable[bytes]],
    ) -> None:
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        self._send(
            "PUT",
            str(url),
            _what(repo, digest),
            push=True,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(end - start)},
            content=pieces,
        )

    # --- requests, tokens and errors -----------------------------------------------------------------

    def _send(self, method: str, path: str, what: str, **options: Any) -> httpx.Response:
        """One request (retried once after a token), read whole; errors translated."""
        with self._stream(method, path, what, **options) as r:
            try:
                r.read()
            except httpx.TransportError as exc:
                raise TemporaryError(f"registry {self.base_url}: {what}: {exc}") from None
            return r

    def _stream(
        self,
        method: str,
        path: str,
        what: str,
        *,
        push: bool = False,
        scope: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: Callable[[], bytes | Iterable[bytes]] | None = None,
        missing_ok: bool = False,
    ) -> _Streamed:
        repo_scope = scope or _scope_for(path, push)
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                path,
                headers={**(headers or {}), **self._auth.header(repo_scope)},
                params=params,
                content=content() if content is not None else None,
            )
            try:
                r = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise TemporaryError(f"registry {self.base_url}: {what}: {exc}", retry_after=2.0) from None
            if r.status_code == 401 and attempt == 0 and self._auth.answer(self._http, r, repo_scope, what):
                r.close()
                attempt += 1
                continue
            if r.is_success or (missing_ok and r.status_code == 404):
                return _Streamed(r)
            with contextlib.suppress(httpx.TransportError):
                r.read()
            r.close()
            raise error_for(r, what, self.base_url)


class _Streamed:
    """A streamed response as a context manager that closes it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _repo(repo: str) -> str:
    if not isinstance(repo, str) or len(repo) > 255 or not _REPOSITORY.fullmatch(repo):
        raise UserError(
            f"{repo!r} is not a repository name: lower-case letters and digits separated by . _ - "
            "in components joined by /",
        )
    return repo


def _manifest_path(repo: str, reference: str) -> str:
    if not (_TAG.fullmatch(reference) or reference.startswith("sha256:")):
        raise UserError(f"{reference!r} is not a tag (letters, digits, _ . -, at most 128) or a digest")
    if reference.startswith("sha256:"):
        check_digest(reference)
    return f"/v2/{_repo(repo)}/manifests/{reference}"


def _what(repo: str, reference: str) -> str:
    return f"{repo}@{reference}" if reference.startswith("sha256:") else f"{repo}:{reference}"


def _scope_for(path: str, push: bool) -> str:
    """The cache key for a request's token: the repository and whether it writes."""
    name = path.split("/v2/", 1)[-1].split("/manifests/")[0].split("/blobs/")[0].split("/tags/")[0]
    return f"repository:{name}:{'pull,push' if push else 'pull'}"


def _location(r: httpx.Response, what: str) -> str:
    location = r.headers.get("Location")
    if not location:
        raise PermanentError(f"registry answered an upload to {what} without a Location")
    return str(r.url.join(location))


def _next_link(r: httpx.Response) -> str | None:
    link = r.headers.get("Link", "")
    match = re.match(r"\s*<([^>]+)>\s*;\s*rel=\"?next\"?", link)
    return match.group(1) if match else None


def _file_pieces(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(_PIECE, left))
            if not data:
                raise PermanentError(f"{path} shrank while it was being uploaded")
            left -= len(data)
            yield data
