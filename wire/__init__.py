"""fusetrain.wire: the code both sides of the gRPC wire use, written once.

The client (fusetrain.client) and the service (fusetrain.service) both import it; it imports
only numpy, protobuf and the generated fusetrain.v1, so a client-only install has all of it.

    tensors   Tensor messages to numpy arrays and back (dtype, shape and size checked)
    metrics   the per-epoch and final metric names, read from the EpochMetrics and FinalMetrics
              messages, and the conversions between a metrics row and its message
    errors    the error kinds both sides agree on, each with the gRPC status code it travels as
    paths     JobSpec field paths (`optimizer.learning_rate`): --set and sweep grids
    idx       the IDX (MNIST) file reader
"""
