"""The MLS working group's interop service and scenario runner (an I/O adapter).

* ``python -m mls.interop serve --port P``: this library as an ``MLSClient``
  gRPC endpoint (``interop/proto/mls_client.proto``), so any interop runner
  can drive it.
* ``python -m mls.interop run --client HOST:PORT ... CONFIG.json ...``: runs
  the working group's scenario files against any set of ``MLSClient``
  endpoints (this library, OpenMLS, ts-mls, ...).

Needs the ``interop`` extra (grpcio, grpcio-tools). Nothing in :mod:`mls`
imports this package, and the browser wheel leaves it out.
"""
