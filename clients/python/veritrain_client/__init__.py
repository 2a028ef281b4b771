"""Python client of a Veritrain node.

The message and service classes are generated from the repository's
``proto/`` with grpcio-tools (``python -m veritrain_client.generate``, run
automatically on first import when ``grpc_tools`` is installed). Signing
follows ``veritrain.tx.v1`` (SIGN_MODE_DIRECT): secp256k1 ECDSA over
SHA-256 of the ``SignDoc``, 64-byte ``r || s`` with low S.
"""
from .client import Client, Signer, TaskEnded  # noqa: F401
