"""Open Inference Protocol v2 over gRPC: the ``inference.GRPCInferenceService`` of the protocol.

``grpc_predict_v2.proto`` is the Open Inference Protocol's gRPC definition, verbatim from
kserve/open-inference-protocol (``specification/protocol/open_inference_grpc.proto``, Apache
2.0, its header kept). ``server.py`` implements the service over the shared
:class:`~modelplane.serving.types.InferenceCore`.

The ``grpc_predict_v2_pb2*`` modules are generated; never edit them. Regenerate from the
repository root with::

    .venv/bin/python -m grpc_tools.protoc -Isrc/modelplane/serving/grpc \\
        --python_out=src/modelplane/serving/grpc --pyi_out=src/modelplane/serving/grpc \\
        --grpc_python_out=src/modelplane/serving/grpc \\
        src/modelplane/serving/grpc/grpc_predict_v2.proto
    sed -i 's/^import grpc_predict_v2_pb2 as/from . import grpc_predict_v2_pb2 as/' \\
        src/modelplane/serving/grpc/grpc_predict_v2_pb2_grpc.py

(the ``sed`` makes protoc's top-level import package-relative). Importing this package imports
nothing from grpcio; import ``modelplane.serving.grpc.server`` for the server.

The messages live in protobuf's default descriptor pool under the package ``inference`` (the
protocol's, which clients address), so they cannot be imported in one process together with
another copy of the same protocol, such as ``tritonclient.grpc``'s: the pool refuses the
duplicate names.
"""

__all__: list[str] = []
