"""Certificates from an ACME CA (RFC 8555: Let's Encrypt, ZeroSSL, step-ca, Pebble in tests).

``AcmeIssuer(settings, http01=..., dns01=...)`` is a :class:`~yunzhou.names.tls.issuers.CertificateIssuer`:
``issue(hosts, directory)`` orders one certificate for all ``hosts``, proves control of each name with the
configured challenge, and writes ``directory/cert.pem`` (leaf then chain) and ``directory/key.pem`` (a new
ECDSA P-256 key, 0600). The protocol itself is certbot's ``acme`` package (with josepy).

- The account key (ECDSA P-256) is created once, 0600, at ``account_key_file`` and reused; the account is
  registered with the e-mail address and the terms of service agreed, and found again by its key.
- HTTP-01: an :class:`Http01Responder` (``DirectoryResponder``: files the router serves at
  ``/.well-known/acme-challenge/<token>``) holds each key authorization while the CA validates.
- DNS-01: :class:`Dns01Solver` sets the TXT record ``_acme-challenge.<name>`` through a DNS provider
  (``*.x`` is validated at ``_acme-challenge.x``) and deletes it afterwards.

Errors are the domain's: TemporaryError when the CA cannot be reached, times out or says to retry;
PermanentError naming the host and the CA's problem detail when it refuses a name or a challenge fails.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from yunzhou.domain.errors import PermanentError, TemporaryError, YunzhouError
from yunzhou.names.dns.records import DnsProvider
from yunzhou.names.tls import local_ca
from yunzhou.names.tls.http01 import DirectoryResponder
from yunzhou.names.tls.issuers import Leaf

__all__ = [
    "AcmeIssuer",
    "AcmeSettings",
    "DirectoryResponder",
    "Dns01ByZone",
    "Dns01Solver",
    "Http01Responder",
    "needs_renewal",
]

log = logging.getLogger(__name__)
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
CHALLENGES = ("http-01", "dns-01")
# CA answers that mean "later", not "never" (RFC 8555 §6.7).
_RETRYABLE = frozenset({"serverInternal", "rateLimited", "badNonce"})


@dataclass(frozen=True)
class AcmeSettings:
    directory_url: str  # e.g. https://acme-v02.api.letsencrypt.org/directory
    email: str  # the account's contact, for the CA's expiry and policy mail
    ca_bundle: Path | None  # trust for the directory's HTTPS (None: the system's trust store)
    account_key_file: Path  # created 0600 on first use, then reused
    challenge: Literal["http-01", "dns-01"] = "http-01"
    timeout: float = 30.0  # each request to the CA
    validation_timeout: float = 120.0  # from answering the challenges until the certificate is issued


class Http01Responder(Protocol):
    """Serves ``key_authorization`` at ``http://<host>/.well-known/acme-challenge/<token>`` until removed."""

    def deploy(self, token: str, key_authorization: str) -> None: ...

    def remove(self, token: str) -> None: ...


class Dns01Solver:
    """DNS-01 through a DNS provider: TXT records at ``_acme-challenge.<name>`` in ``zone``."""

    def __init__(self, provider: DnsProvider, zone: str, ttl: int = 60) -> None:
        self.provider = provider
        self.zone = zone
        self.ttl = ttl

    def deploy(self, name: str, values: Sequence[str]) -> None:
        """Make the TXT record set at ``name`` exactly ``values`` (a name and its wildcard share one)."""
        self.provider.upsert(self.zone, name, "TXT", values, self.ttl)

    def remove(self, name: str) -> None:
        self.provider.delete(self.zone, name, "TXT")


class Dns01ByZone(Dns01Solver):
    """DNS-01 through whichever provider holds the name's zone (the longest zone the name is in), from
    ``zones()`` — the (zone, provider) pairs the platform may write, read at each challenge."""

    def __init__(self, zones: Callable[[], Sequence[tuple[str, DnsProvider]]], ttl: int = 60) -> None:
        self.zones = zones
        self.ttl = ttl

    def _holder(self, name: str) -> tuple[str, DnsProvider]:
        held = [(zone, p) for zone, p in self.zones() if name == zone or name.endswith("." + zone)]
        if not held:
            raise PermanentError(
                f"no DNS provider holds a zone for {name} (dns-01): an admin adds one with "
                "`yunzhou dns provider add … --zone ZONE` (docs/names.md)"
            )
        return max(held, key=lambda item: len(item[0]))

    def deploy(self, name: str, values: Sequence[str]) -> None:
        zone, provider = self._holder(name)
        provider.upsert(zone, name, "TXT", values, self.ttl)

    def remove(self, name: str) -> None:
        zone, provider = self._holder(name)
        provider.delete(zone, name, "TXT")


def needs_renewal(
    leaf_or_cert_file: Leaf | Path, hosts: Sequence[str], now: dt.datetime | None = None
) -> bool:
    """The local CA's rule for any issuer's certificate: less than a third of its lifetime left, or a host
    in ``hosts`` it does not cover. A missing file is due."""
    path = leaf_or_cert_file.cert_file if isinstance(leaf_or_cert_file, Leaf) else leaf_or_cert_file
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return True
    return local_ca.needs_renewal(certificate, list(hosts), now)


def _identifier_host(authzr: messages.AuthorizationResource) -> str:
    host = str(authzr.body.identifier.value)
    return f"*.{host}" if authzr.body.wildcard else host


class AcmeIssuer:
    name = "acme"

    def __init__(
        self,
        settings: AcmeSettings,
        http01: Http01Responder | None = None,
        dns01: Dns01Solver | None = None,
    ) -> None:
        if settings.challenge not in CHALLENGES:
            allowed = ", ".join(CHALLENGES)
            raise PermanentError(f"acme.challenge: {settings.challenge!r} is not one of {allowed}")
        if settings.challenge == "http-01" and http01 is None:
            raise PermanentError(
                "acme.challenge: http-01 needs a responder (the router's challenge directory)"
            )
        if settings.challenge == "dns-01" and dns01 is None:
            raise PermanentError("acme.challenge: dns-01 needs a DNS provider and zone")
        self.settings = settings
        self.http01 = http01
        self.dns01 = dns01
        self._client: client.ClientV2 | None = None
        self._key: JWKEC | None = None

    # the CertificateIssuer interface ------------------------------------------------------------
    def issue(self, hosts: Sequence[str], directory: Path) -> Leaf:
        names = list(dict.fromkeys(h.lower().rstrip(".") for h in hosts))
        if not names or not all(names):
            raise PermanentError("a certificate needs at least one host name")
        if self.settings.challenge == "http-01" and any(h.startswith("*.") for h in names):
            raise PermanentError(f"{names}: wildcard names can only be validated by dns-01 (acme.challenge)")
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with self._translated(names):
            acme = self._account()
            order = acme.new_order(crypto_util.make_csr(key_pem, names))
            with self._challenges_answered(acme, order):
                deadline = dt.datetime.now() + dt.timedelta(seconds=self.settings.validation_timeout)
                order = acme.poll_and_finalize(order, deadline)  # the library's deadline is naive local time
        assert order.fullchain_pem is not None
        return _write(names, order.fullchain_pem.encode("ascii"), key_pem, directory)

    # account ------------------------------------------------------------------------------------
    def _account_key(self) -> JWKEC:
        if self._key is None:
            path = self.settings.account_key_file
            if not path.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                new = ec.generate_private_key(ec.SECP256R1())
                local_ca._write_private(path, local_ca._key_pem(new))
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise PermanentError(f"acme.account_key_file: {path} is not an ECDSA private key")
            self._key = JWKEC(key=loaded)
        return self._key

    def _account(self) -> client.ClientV2:
        """The ACME client with its account: registered on first use, found again by its key afterwards."""
        if self._client is not None:
            return self._client
        settings = self.settings
        verify = str(settings.ca_bundle) if settings.ca_bundle is not None else True
        net = client.ClientNetwork(
            self._account_key(),
            alg=ES256,
            verify_ssl=verify,  # type: ignore[arg-type]  # passed to requests' verify: a CA bundle path
            user_agent="yunzhou-acme",
            timeout=settings.timeout,  # type: ignore[arg-type]  # requests takes float seconds
        )
        acme = client.ClientV2(client.ClientV2.get_directory(settings.directory_url, net), net)
        registration = messages.NewRegistration.from_data(email=settings.email, terms_of_service_agreed=True)
        try:
            acme.new_account(registration)
        except errors.ConflictError as existing:  # this key already has an account: use it
            net.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        self._client = acme
        return acme

    # challenges ---------------------------------------------------------------------------------
    def _pick(self, authzr: messages.AuthorizationResource) -> messages.ChallengeBody:
        wanted = challenges.HTTP01 if self.settings.challenge == "http-01" else challenges.DNS01
        for challb in authzr.body.challenges:
            if isinstance(challb.chall, wanted):
                return challb
        offered = ", ".join(str(c.chall.typ) for c in authzr.body.challenges)
        raise PermanentError(
            f"ACME CA {self.settings.directory_url} offers no {self.settings.challenge} challenge for "
            f"{_identifier_host(authzr)} (offered: {offered or 'none'})"
        )

    @contextmanager
    def _challenges_answered(self, acme: client.ClientV2, order: messages.OrderResource) -> Iterator[None]:
        """Publish every pending challenge's answer, tell the CA, and remove the answers afterwards."""
        key = self._account_key()
        pending: list[tuple[messages.ChallengeBody, challenges.ChallengeResponse]] = []
        tokens: list[str] = []
        txt: dict[str, list[str]] = {}
        try:
            for authzr in order.authorizations:
                if authzr.body.status == messages.STATUS_VALID:
                    continue  # the CA still trusts an earlier validation of this name
                challb = self._pick(authzr)
                response, validation = challb.response_and_validation(key)
                pending.append((challb, response))
                if isinstance(challb.chall, challenges.HTTP01):
                    assert self.http01 is not None
                    token = challb.chall.encode("token")
                    tokens.append(token)
                    self.http01.deploy(token, validation)
                else:
                    name = challb.chall.validation_domain_name(str(authzr.body.identifier.value))
                    txt.setdefault(name, []).append(validation)
            for name, values in txt.items():
                assert self.dns01 is not None
                self.dns01.deploy(name, values)
            for challb, response in pending:
                acme.answer_challenge(challb, response)
            yield
        finally:
            self._clean_up(tokens, list(txt))

    def _clean_up(self, tokens: list[str], names: list[str]) -> None:
        for token in tokens:
            assert self.http01 is not None
            self.http01.remove(token)
        for name in names:
            assert self.dns01 is not None
            try:
                self.dns01.remove(name)
            except YunzhouError as e:  # a leftover TXT record is harmless; the result is what matters
                log.warning("could not remove ACME challenge record %s: %s", name, e)

    # errors -------------------------------------------------------------------------------------
    @contextmanager
    def _translated(self, hosts: list[str]) -> Iterator[None]:
        """The ACME library's and requests' exceptions as the domain's errors (naming host and CA)."""
        ca = f"ACME CA {self.settings.directory_url}"
        try:
            yield
        except errors.ValidationError as e:
            raise PermanentError(_validation_failures(ca, e)) from None
        except errors.TimeoutError:
            raise TemporaryError(
                f"{ca} did not validate {', '.join(hosts)} within {self.settings.validation_timeout:g} s",
                retry_after=60.0,
            ) from None
        except messages.Error as e:
            problem = f"{e.code or e.typ}: {e.detail or e.title}"
            message = f"{ca} refused the order for {', '.join(hosts)}: {problem}"
            if e.code in _RETRYABLE:
                raise TemporaryError(message, retry_after=60.0) from None
            raise PermanentError(message) from None
        except errors.IssuanceError as e:
            raise PermanentError(f"{ca} did not issue for {', '.join(hosts)}: {e.error.detail}") from None
        except requests.exceptions.SSLError as e:
            raise PermanentError(
                f"{ca}: TLS verification of the directory failed (check acme.ca_bundle): {e}"
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
            raise TemporaryError(f"{ca} is unreachable: {e}", retry_after=60.0) from None
        except (errors.Error, requests.exceptions.RequestException, DeserializationError) as e:
            raise PermanentError(f"{ca}: unexpected answer while ordering {', '.join(hosts)}: {e}") from None


def _validation_failures(ca: str, error: errors.ValidationError) -> str:
    parts = []
    for authzr in error.failed_authzrs:
        problems = [c.error for c in authzr.body.challenges if c.error is not None]
        details = "; ".join(f"{p.code or p.typ}: {p.detail}" for p in problems) or "no detail given"
        parts.append(f"{_identifier_host(authzr)}: {details}")
    return f"{ca} could not validate " + " | ".join(parts)


def _write(hosts: list[str], chain_pem: bytes, key_pem: bytes, directory: Path) -> Leaf:
    """``directory/key.pem`` (0600 from creation) and ``directory/cert.pem``, each replaced by rename."""
    certificate = x509.load_pem_x509_certificate(chain_pem)
    issued = local_ca.Leaf(certificate, chain_pem, key_pem)
    cert_file, key_file = local_ca._write_pair(issued, directory, CERT_FILE, KEY_FILE)
    return Leaf(
        hosts=tuple(hosts),
        cert_file=cert_file,
        key_file=key_file,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        issuer=AcmeIssuer.name,
    )
