"""The one place naming every activation, loss, optimizer, initializer, schedule and dtype.

Each name maps to the integer code the compiled kernels dispatch on; validation, the
service's enums, documentation and the tests all iterate over these dicts.
"""

# Activation codes (kernels/activations.py).
ACTIVATIONS = {
    "identity": 0,
    "sigmoid": 1,
    "tanh": 2,
    "relu": 3,
    "leaky_relu": 4,
    "softmax": 5,      # output layer only
}

# Loss codes (kernels/losses.py).
LOSSES = {
    "half_sse": 0,               # 1/B * sum_rows 1/2 * sum_outputs (a - y)^2
    "mse": 1,                    # 1/(B*O) * sum (a - y)^2
    "binary_cross_entropy": 2,   # -1/(B*O) * sum y log a + (1 - y) log(1 - a); sigmoid output
    "softmax_cross_entropy": 3,  # -1/B * sum y log a; softmax output, gradient fused
}

# Optimizer codes (kernels/optimizers.py).
OPTIMIZERS = {
    "sgd": 0,
    "momentum": 1,
    "nesterov": 2,
    "adam": 3,
    "adamw": 4,
    "rmsprop": 5,
}

# Number of state slots per parameter each optimizer keeps.
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2, "adamw": 2, "rmsprop": 1}

# Initializers (init.py).
INITIALIZERS = ("uniform", "normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal")

# Learning-rate schedules (schedules.py).
# "plateau" is the one that reads the metrics: its rate is decided after each epoch.
SCHEDULES = ("constant", "step", "exponential", "inverse_scaling", "cosine", "plateau")

DTYPES = ("float32", "float64")

# Losses whose targets are class labels, so accuracy is always reported.
CLASSIFICATION_LOSSES = ("binary_cross_entropy", "softmax_cross_entropy")
