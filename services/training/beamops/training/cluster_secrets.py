"""The Dask cluster's own credentials: what compose.yaml's one-shot ``dask-init`` job makes.

    python -m beamops.training.cluster_secrets --tls-dir DIR \\
        --tokens-file TOKENS --worker-token-file FILE

- **TLS** (:func:`make_tls`): a private CA for this cluster only and one certificate per Dask role,
  ``scheduler``, ``worker`` and ``client`` (the training service), in DIR: ``ca.pem``,
  ``<role>.pem``, ``<role>.key``. Dask requires and verifies a certificate on both ends of every
  connection (``distributed.Security``, ``require-encryption``), so only holders of these files can
  join the cluster or submit to it. The CA's key is never written: nobody can issue another
  certificate later. Rotate by deleting DIR (the ``dask-tls`` volume) and starting again.
- **The workers' data credential** (:func:`ensure_worker_token`): a token of the ``reader`` role
  named ``dask-worker`` in the shared tokens file, its plaintext in FILE, which only the workers
  mount. Dask tasks read datasets with it instead of the submitter's token (which never leaves
  the training service). Kept while it still authenticates; replaced otherwise.

Both steps do nothing when their result is already there, so the job can run on every start.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
from pathlib import Path

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import TokenStore
from beamops.runtime.errors import NotFound

ROLES = ("scheduler", "worker", "client")
WORKER_TOKEN_NAME = "dask-worker"
VALIDITY_DAYS = 825


def tls_files(tls_dir: Path) -> dict[str, Path]:
    """``ca`` and ``<role>_cert`` / ``<role>_key`` for every role."""
    files = {"ca": tls_dir / "ca.pem"}
    for role in ROLES:
        files[f"{role}_cert"] = tls_dir / f"{role}.pem"
        files[f"{role}_key"] = tls_dir / f"{role}.key"
    return files


def _write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_tls(tls_dir: Path, days: int = VALIDITY_DAYS) -> bool:
    """Write the cluster's CA and role certificates into ``tls_dir``; False when they exist."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = tls_files(tls_dir)
    if all(p.is_file() for p in files.values()):
        return False
    tls_dir.mkdir(parents=True, exist_ok=True)
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=days)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "beamops Dask cluster"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("beamops Dask cluster CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    written: dict[str, bytes] = {}
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(f"dask-{role}")).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                # every role both listens and connects (workers talk to each other and to the scheduler)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"dask-{role}")]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        written[f"{role}_cert"] = cert.public_bytes(serialization.Encoding.PEM)
        written[f"{role}_key"] = key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption())
    for field, data in written.items():
        _write(files[field], data, 0o600 if field.endswith("_key") else 0o644)
    _write(files["ca"], ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return True


def ensure_worker_token(tokens_file: Path, token_file: Path, name: str = WORKER_TOKEN_NAME) -> bool:
    """Make sure ``token_file`` holds a valid reader-role token named ``name``; False when it
    already did."""
    store = TokenStore(tokens_file)
    try:
        current = token_file.read_text().strip()
    except OSError:
        current = ""
    if current:
        principal = store.authenticate(current)
        if principal is not None and principal.name == name and principal.role == auth_pb2.ROLE_READER:
            return False
    try:
        store.revoke(name)
    except NotFound:
        pass
    token = store.create(name, auth_pb2.ROLE_READER)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    _write(token_file, (token + "\n").encode(), 0o600)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m beamops.training.cluster_secrets",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--tls-dir", type=Path, required=True)
    parser.add_argument("--tokens-file", type=Path, required=True)
    parser.add_argument("--worker-token-file", type=Path, required=True)
    args = parser.parse_args(argv)
    made = make_tls(args.tls_dir)
    print(f"Dask TLS certificates {'written to' if made else 'already in'} {args.tls_dir}")
    made = ensure_worker_token(args.tokens_file, args.worker_token_file)
    print(f"Dask workers' data token ({WORKER_TOKEN_NAME}, reader) "
          f"{'written to' if made else 'still valid in'} {args.worker_token_file}")


if __name__ == "__main__":
    main()
