"""The MLS working group's ``mls_client.proto``, compiled when first needed.

grpcio-tools compiles the proto in memory (``grpc.protos_and_services``), so no
generated code lives in the tree. The proto is the copy in ``interop/proto``
of this repository, or the file named by ``MLS_INTEROP_PROTO``.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

PROTO_NAME = "mls_client.proto"


def proto_path() -> Path:
    env = os.environ.get("MLS_INTEROP_PROTO")
    repo = Path(__file__).resolve().parents[3]
    path = Path(env) if env else repo / "interop" / "proto" / PROTO_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set MLS_INTEROP_PROTO to mls_client.proto")
    return path


@functools.cache
def load() -> tuple[Any, Any]:
    """(messages module, services module) of ``mls_client.proto``."""
    import grpc  # the `interop` extra

    path = proto_path()
    # protos_and_services resolves the file against sys.path; the module name
    # must be the bare file name so both generated modules find each other.
    sys.path.insert(0, str(path.parent))
    try:
        protos, services = grpc.protos_and_services(path.name)
    finally:
        sys.path.remove(str(path.parent))
    return protos, services
