"""A real RFC 3161 Time-Stamping Authority on loopback, for the tests.

Its own test CA issues it a certificate whose only (critical) extended key usage is
timeStamping; it answers TimeStampReq over HTTP with a TimeStampResp whose token is CMS
SignedData over a TSTInfo (the request's imprint and nonce, the time now, a serial), with the
signed attributes RFC 3161 asks for (content-type id-ct-TSTInfo, message-digest,
signing-certificate-v2), ECDSA-signed over their DER as a SET. Nothing is mocked: the
evidence code talks to it through urllib exactly as to a TSA on the internet.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.99999.1.1"  # a private arc: this test TSA's policy


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nonsite tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, key, issuer: x509.Name, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
               .not_valid_after(now + timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


class TestTSA:
    """A CA, the TSA certificate it issued, and an HTTP server answering time-stamp requests."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "nonsite test TSA"):
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _certificate(_name(f"{name} CA"), self.ca_key, _name(f"{name} CA"), self.ca_key, ca=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = _certificate(_name(name), self.key, self.ca.subject, self.ca_key, ca=False)
        self.serials = itertools.count(1)
        self.requests = 0
        self.refusing = False  # answer every request with a rejection (no token), as a TSA out of service does
        self.server: ThreadingHTTPServer | None = None

    @property
    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/tsa"

    def respond(self, request_der: bytes) -> bytes:
        """The TimeStampResp for one DER TimeStampReq."""
        request = tsp.TimeStampReq.load(request_der)
        if self.refusing:
            status = tsp.PKIStatusInfo({"status": "rejection", "status_string": ["policy not available"],
                                        "fail_info": {"unaccepted_policy"}})
            return core.Sequence(contents=status.dump()).dump()  # the token is absent from a refusal
        info = tsp.TSTInfo({
            "version": "v1",
            "policy": POLICY,
            "message_imprint": request["message_imprint"],
            "serial_number": next(self.serials),
            "gen_time": datetime.now(timezone.utc).replace(microsecond=0),
            "nonce": request["nonce"].native,
        })
        info_der = info.dump()
        certificate_der = self.certificate.public_bytes(serialization.Encoding.DER)
        certificate = asn1_x509.Certificate.load(certificate_der)
        attributes = cms.CMSAttributes([
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.sha256(info_der).digest()]},
            {"type": "signing_certificate_v2", "values": [{"certs": [{
                "hash_algorithm": {"algorithm": "sha256"}, "cert_hash": hashlib.sha256(certificate_der).digest()}]}]},
        ])
        signature = self.key.sign(attributes.dump(), ec.ECDSA(hashes.SHA256()))  # the DER of the SET
        signer = cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                "issuer": certificate.issuer, "serial_number": certificate.serial_number}}),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signature,
        })
        signed = cms.SignedData({
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(info_der)},
            "certificates": [certificate] if request["cert_req"].native else [],
            "signer_infos": [signer],
        })
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()

    def start(self) -> "TestTSA":
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self.send_error(415, "expected application/timestamp-query")
                    return
                tsa.requests += 1
                reply = tsa.respond(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="test-tsa", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
