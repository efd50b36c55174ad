# SPDX-License-Identifier: Apache-2.0
"""The Sentry protobuf messages for Python, generated at test time from the project's
proto/sentry.proto with Debian's protoc (python3-protobuf supplies the runtime)."""
import importlib
import os
import subprocess
import sys
import tempfile

from harness import REPO

_module = None


def load():
    global _module
    if _module is None:
        out = tempfile.mkdtemp(prefix="picket-pb-")
        subprocess.run(["protoc", f"--proto_path={os.path.join(REPO, 'proto')}",
                        f"--python_out={out}", os.path.join(REPO, "proto", "sentry.proto")],
                       check=True)
        sys.path.insert(0, out)
        _module = importlib.import_module("sentry_pb2")
    return _module


METHOD = "/dapr.proto.sentry.v1.CA/SignCertificate"

# gRPC status codes used by the tests.
OK, INVALID_ARGUMENT, PERMISSION_DENIED, INTERNAL, UNIMPLEMENTED = 0, 3, 7, 13, 12
