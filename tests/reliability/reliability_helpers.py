"""Helpers of the reliability proofs: certificates, in-process servers, specs, figures."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

import grpc

from fusetrain.service.config import ServerConfig, ServiceLimits
from fusetrain.service.server import Server
from fusetrain.v1 import service_pb2_grpc

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-fedcba9876543210xyz"


def token_file(path: Path) -> Path:
    path.write_text(f"# owners of this test server\nalice {ALICE}\nbob {BOB}\n")
    return path


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by
    the CA, as PEM files in `folder`: {"ca", "server_cert", "server_key", "client_cert", "client_key"}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject, key, issuer, issuer_key, ca=False, san=None, usage=None):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def key_pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("fusetrain test CA", ca_key, "fusetrain test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = build("localhost", server_key, "fusetrain test CA", ca_key,
                   san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                   usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = build("fusetrain test client", client_key, "fusetrain test CA", ca_key,
                   usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    files = {"ca": ca.public_bytes(pem), "server_cert": server.public_bytes(pem),
             "server_key": key_pem(server_key), "client_cert": client.public_bytes(pem),
             "client_key": key_pem(client_key)}
    out = {}
    for key, data in files.items():
        out[key] = folder / f"{key}.pem"
        out[key].write_bytes(data)
    return out


def in_process_server(data_dir: Path, executor_factory=None, limits: ServiceLimits = None, **config) -> Server:
    """A started in-process Server on a free 127.0.0.1 port (jobs on a thread by default)."""
    if executor_factory is None:
        from service_helpers import ThreadExecutor
        executor_factory = ThreadExecutor
    limits = limits or ServiceLimits(max_queued_jobs=500, max_dataset_bytes=8 << 20, max_epochs=10_000_000,
                                     max_parameters=1_000_000, max_job_seconds=600)
    server = Server(ServerConfig(address="127.0.0.1:0", data_dir=data_dir, workers=1, limits=limits,
                                 **config), executor_factory=executor_factory)
    server.start()
    return server


def stub_for(address: str, token: str = "", credentials=None):
    """(channel, TrainingServiceStub, metadata) for a token."""
    channel = (grpc.secure_channel(address, credentials) if credentials is not None
               else grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)]))
    return channel, service_pb2_grpc.TrainingServiceStub(channel), (
        (("authorization", f"Bearer {token}"),) if token else ())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (from /proc), bytes."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def percentile(values, q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[i]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
