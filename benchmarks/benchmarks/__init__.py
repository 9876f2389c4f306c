"""fusetrain's asv suites: engine training, compilation and the gRPC service (see docs/ASV.md)."""
