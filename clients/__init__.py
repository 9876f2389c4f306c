"""fusetrain.client: the `fusetrain` command line (and, later, the Python client library).

Needs only grpcio, protobuf and numpy: it imports the generated fusetrain.v1 modules, never the
service or the engine (except `fusetrain serve`, which starts the service in-process).
"""
