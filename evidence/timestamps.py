"""RFC 3161 time-stamps: a Time-Stamping Authority's signed word that some bytes existed at a time.

The deployment's own signature proves who sealed a pack, not when: whoever holds the key could
sign a back-dated manifest tomorrow. A token from an independent TSA binds the manifest's (or an
audit checkpoint's) SHA-256 to the TSA's clock under the TSA's key, so the time no longer rests
on the deployment alone. ``TimeStamper.stamp`` asks the configured TSA for a token over some
bytes; ``check_token`` verifies one against the bytes and the TSA's CA certificate, without any
network: the token carries the TSA's certificate, and the CA is configured.

Only the token (a CMS ``ContentInfo`` with ``SignedData`` over a ``TSTInfo``, DER) is kept: for a
pack as ``manifest.tsr`` beside ``manifest.sig``.
"""
from __future__ import annotations

import hashlib
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

TIMESTAMP = "manifest.tsr"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY = 1 << 20  # a token is a few kilobytes; anything much larger is not one

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class TimestampError(RuntimeError):
    """The TSA could not be reached, refused, or answered with something that is not a token for our bytes."""


class _TimeStampResp(core.Sequence):
    """RFC 3161's TimeStampResp. asn1crypto's own requires the token, which a refusal does not carry."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def _digest(algorithm: str, data: bytes) -> bytes:
    if algorithm not in _HASHES:
        raise ValueError(f"hash algorithm {algorithm} is not accepted (SHA-256, SHA-384 or SHA-512 only)")
    return hashlib.new(algorithm, data).digest()


def _tst_info(token: cms.ContentInfo) -> tuple[cms.SignedData, tsp.TSTInfo, bytes]:
    """The token's SignedData, its TSTInfo, and the TSTInfo's DER (what the message-digest attribute covers)."""
    if token["content_type"].native != "signed_data":
        raise ValueError(f"the token is CMS {token['content_type'].native}, not signed data")
    signed = token["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise ValueError(f"the token signs {encap['content_type'].native}, not a time-stamp (TSTInfo)")
    content = encap["content"]
    if content is None or not content.contents:
        raise ValueError("the token's TSTInfo is empty (detached)")
    return signed, content.parsed, content.contents


@dataclass(frozen=True)
class TimeStamper:
    """Asks one TSA for tokens over HTTP (RFC 3161 section 3.4).

    With ``ca_pem`` every token is checked in full before it is returned, so a misconfigured TSA
    or CA file shows as a warning when the pack is written, not as a failed pack at every verify."""

    url: str
    ca_pem: bytes | None = None
    timeout_s: float = 10.0

    def stamp(self, data: bytes) -> bytes:
        """The DER token over ``data``; raises ``TimestampError`` for anything but a granted, matching token."""
        digest = hashlib.sha256(data).digest()
        nonce = secrets.randbits(63) | 1 << 62  # positive, never zero, and (nearly) never repeated
        request = tsp.TimeStampReq({
            "version": 1,
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
            "nonce": nonce,
            "cert_req": True,  # the token then carries the TSA's certificate: verifiable offline
        })
        http = urllib.request.Request(self.url, data=request.dump(), method="POST",
                                      headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE})
        try:
            with urllib.request.urlopen(http, timeout=self.timeout_s) as reply:
                body = reply.read(MAX_REPLY + 1)
        except urllib.error.HTTPError as exc:
            raise TimestampError(f"TSA {self.url} answered HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, unresolvable, timed out
            raise TimestampError(f"TSA {self.url} unreachable ({getattr(exc, 'reason', exc)})") from exc
        if len(body) > MAX_REPLY:
            raise TimestampError(f"TSA {self.url} answered more than {MAX_REPLY} bytes: not a time-stamp reply")
        try:
            response = _TimeStampResp.load(body)
            status = response["status"]["status"].native
            if status not in ("granted", "granted_with_mods"):
                why = "; ".join([*(response["status"]["status_string"].native or []),
                                 *sorted(response["status"]["fail_info"].native or [])])
                raise TimestampError(f"TSA {self.url} refused the request: {status}{f' ({why})' if why else ''}")
            token = response["time_stamp_token"]
            if isinstance(token, core.Void):
                raise TimestampError(f"TSA {self.url} granted the request but sent no token")
            _, info, _ = _tst_info(token)
            imprint = info["message_imprint"]
            if imprint["hash_algorithm"]["algorithm"].native != "sha256" or imprint["hashed_message"].native != digest:
                raise TimestampError(f"TSA {self.url} time-stamped other bytes than those sent (message imprint differs)")
            if info["nonce"].native != nonce:
                raise TimestampError(f"TSA {self.url} answered with another nonce (a replayed or foreign reply)")
            raw = token.dump()
        except (ValueError, TypeError, KeyError) as exc:
            raise TimestampError(f"TSA {self.url} sent no readable time-stamp reply ({exc})") from exc
        if self.ca_pem is not None:
            _, problem = check_token(raw, data, self.ca_pem)
            if problem:
                raise TimestampError(f"TSA {self.url} sent a token that does not verify: {problem}")
        return raw


def check_token(token_bytes: bytes, data_bytes: bytes, tsa_ca_pem: bytes | None) -> tuple[datetime | None, str | None]:
    """(the TSA's time, None) when the token is good for ``data_bytes``, else (None, what is wrong).

    Checked: the imprint is the hash of the data; the signed attributes name a TSTInfo and carry
    its digest; the signature over them verifies with the certificate the token carries; that
    certificate is for time-stamping, was valid at the time stamped, and (when ``tsa_ca_pem`` is
    given) was issued by the TSA's CA. Without a CA only the trust in the TSA is left unchecked."""
    try:
        token = cms.ContentInfo.load(token_bytes)
        signed, info, info_der = _tst_info(token)
        imprint = info["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if imprint["hashed_message"].native != _digest(algorithm, data_bytes):
            return None, "the token time-stamps other bytes than these (the data was altered after it was time-stamped)"
        at = info["gen_time"].native
        signers = list(signed["signer_infos"])
        if len(signers) != 1:
            return None, f"the token has {len(signers)} signers instead of one"
        signer = signers[0]
        certificate = _signer_certificate(signed, signer)
        if certificate is None:
            return None, "the token does not carry its signer's certificate"
        problem = (_signed_attributes_problem(signer, info_der, certificate.dump())
                   or _signature_problem(signer, certificate.dump())
                   or _certificate_problem(certificate.dump(), at, tsa_ca_pem))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return None, f"not a readable time-stamp token ({exc})"
    return (None, problem) if problem else (at, None)


def _signer_certificate(signed: cms.SignedData, signer: cms.SignerInfo):
    sid = signer["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            if cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native:
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    return None


def _signed_attributes_problem(signer: cms.SignerInfo, info_der: bytes, certificate_der: bytes) -> str | None:
    """The signed attributes must say "this is a TSTInfo", carry its digest, and name the signer's certificate."""
    attributes = signer["signed_attrs"]
    if not attributes:
        return "the token's signature has no signed attributes (RFC 5652 requires them over a TSTInfo)"
    found = {a["type"].native: a["values"] for a in attributes}
    if [v.native for v in found.get("content_type", [])] != ["tst_info"]:
        return "the token's signed attributes do not name a TSTInfo as the content signed"
    digest = _digest(signer["digest_algorithm"]["algorithm"].native, info_der)
    if [v.native for v in found.get("message_digest", [])] != [digest]:
        return "the token's TSTInfo does not match the digest its signature covers (the token was altered)"
    if "signing_certificate_v2" in found:
        first = found["signing_certificate_v2"][0]["certs"][0]
        if first["cert_hash"].native != _digest(first["hash_algorithm"]["algorithm"].native, certificate_der):
            return "the certificate in the token is not the one its signature names (signing-certificate-v2)"
    elif "signing_certificate" in found:
        if found["signing_certificate"][0]["certs"][0]["cert_hash"].native != hashlib.sha1(certificate_der).digest():
            return "the certificate in the token is not the one its signature names (signing-certificate)"
    else:
        return "the token's signed attributes do not name the signing certificate (RFC 3161 requires it)"
    return None


def _signature_problem(signer: cms.SignerInfo, certificate_der: bytes) -> str | None:
    """The signature over the DER of the signed attributes, re-tagged as the SET they are (RFC 5652 5.4)."""
    signed_bytes = signer["signed_attrs"].untag().dump()
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        return f"the token is signed with {digest_name}, which is not accepted"
    digest = _HASHES[digest_name]()
    key = x509.load_der_x509_certificate(certificate_der).public_key()
    algorithm = signer["signature_algorithm"]
    kind = algorithm.signature_algo
    signature = signer["signature"].native
    try:
        if isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pkcs1v15":
            key.verify(signature, signed_bytes, padding.PKCS1v15(), digest)
        elif isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pss":
            params = algorithm["parameters"]
            key.verify(signature, signed_bytes, padding.PSS(padding.MGF1(digest), params["salt_length"].native), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and kind == "ecdsa":
            key.verify(signature, signed_bytes, ec.ECDSA(digest))
        elif isinstance(key, ed25519.Ed25519PublicKey) and kind == "ed25519":
            key.verify(signature, signed_bytes)
        else:
            return f"the token's signature algorithm ({kind}) does not fit its certificate's key"
    except InvalidSignature:
        return "the token's signature does not verify with its certificate (the token was altered or forged)"
    return None


def _certificate_problem(certificate_der: bytes, at: datetime, tsa_ca_pem: bytes | None) -> str | None:
    """A time-stamping certificate, valid at the time stamped, issued by the configured TSA CA."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = []
    if ExtendedKeyUsageOID.TIME_STAMPING not in usage:
        return f"the token's certificate ({certificate.subject.rfc4514_string()}) is not for time-stamping (no timeStamping key usage)"
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        return f"the token's certificate was not valid at the time stamped ({at.isoformat()})"
    if tsa_ca_pem is None:
        return None
    try:
        authorities = x509.load_pem_x509_certificates(tsa_ca_pem)
    except ValueError as exc:
        return f"the configured TSA CA certificate is not a readable PEM certificate ({exc})"
    for authority in authorities:
        try:
            certificate.verify_directly_issued_by(authority)
            return None
        except (ValueError, TypeError, InvalidSignature):
            continue
    return (f"the token's certificate ({certificate.subject.rfc4514_string()}) was not issued by the configured TSA CA "
            f"({', '.join(a.subject.rfc4514_string() for a in authorities)})")


def token_time(token_bytes: bytes) -> datetime:
    """The time a token states, unchecked: for reporting a token just received (``check_token`` verifies)."""
    return _tst_info(cms.ContentInfo.load(token_bytes))[1]["gen_time"].native


def time_note(at: datetime) -> str:
    """The TSA's time as verification reports it."""
    return f"time-stamped at {at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC by the TSA"
