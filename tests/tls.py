"""Test certificates: a CA of our own and leaf certificates it signs (or that sign themselves),
made with `cryptography` for the TLS tests of the transport and of production delivery."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class PKI:
    """A test CA and certificates made with `cryptography`: `ca` is the CA's PEM file; each
    certificate is (cert.pem, key.pem). "good" is CA-signed for localhost and trail.test."""

    def __init__(self, folder):
        self.folder = folder
        ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TNT test CA")])
        self.ca_key = ca_key
        ca = self._build(
            self.ca_name,
            ca_key.public_key(),
            ca_key,
            self.ca_name,
            days=(-1, 2),
            extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)],
        )
        self.ca = self._write("ca", ca, ca_key)[0]
        self.good = self.leaf("good", ["localhost", "trail.test"])
        self.wrong_host = self.leaf("wrong-host", ["other.example"])
        self.expired = self.leaf("expired", ["localhost"], days=(-10, -1))
        self.self_signed = self.leaf("self-signed", ["localhost"], self_signed=True)

    def leaf(self, label, hosts, *, days=(-1, 2), self_signed=False):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        san = x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts])
        issuer, signer = (subject, key) if self_signed else (self.ca_name, self.ca_key)
        cert = self._build(
            subject, key.public_key(), signer, issuer, days=days, extensions=[(san, False)]
        )
        return self._write(label, cert, key)

    @staticmethod
    def _build(subject, public_key, signer, issuer, *, days, extensions):
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days[0]))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    def _write(self, label, cert, key):
        cert_path, key_path = self.folder / f"{label}.pem", self.folder / f"{label}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert_path), str(key_path)
