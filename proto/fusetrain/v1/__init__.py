"""fusetrain.v1: protobuf and gRPC modules generated from proto/fusetrain/v1/*.proto by `make proto`.

Only this file is written by hand; the *_pb2*.py and *.pyi files beside it are produced by
grpc_tools.protoc and never edited (tests/service/test_proto.py checks they are up to date).
"""
