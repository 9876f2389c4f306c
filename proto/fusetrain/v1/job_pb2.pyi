from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data", "values")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Layer(_message.Message):
    __slots__ = ("units", "activation", "leaky_slope", "weights", "bias", "freeze_weights", "freeze_bias", "dropout")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    LEAKY_SLOPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    FREEZE_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    FREEZE_BIAS_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    units: int
    activation: str
    leaky_slope: float
    weights: Tensor
    bias: Tensor
    freeze_weights: bool
    freeze_bias: bool
    dropout: float
    def __init__(self, units: _Optional[int] = ..., activation: _Optional[str] = ..., leaky_slope: _Optional[float] = ..., weights: _Optional[_Union[Tensor, _Mapping]] = ..., bias: _Optional[_Union[Tensor, _Mapping]] = ..., freeze_weights: _Optional[bool] = ..., freeze_bias: _Optional[bool] = ..., dropout: _Optional[float] = ...) -> None: ...

class Normalization(_message.Message):
    __slots__ = ("kind", "all_columns", "shift", "scale")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ALL_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    all_columns: bool
    shift: Tensor
    scale: Tensor
    def __init__(self, kind: _Optional[str] = ..., all_columns: _Optional[bool] = ..., shift: _Optional[_Union[Tensor, _Mapping]] = ..., scale: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("inputs", "layers", "loss", "initializer", "init_scale", "seed", "dtype", "normalization")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    INITIALIZER_FIELD_NUMBER: _ClassVar[int]
    INIT_SCALE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    inputs: int
    layers: _containers.RepeatedCompositeFieldContainer[Layer]
    loss: str
    initializer: str
    init_scale: float
    seed: int
    dtype: str
    normalization: Normalization
    def __init__(self, inputs: _Optional[int] = ..., layers: _Optional[_Iterable[_Union[Layer, _Mapping]]] = ..., loss: _Optional[str] = ..., initializer: _Optional[str] = ..., init_scale: _Optional[float] = ..., seed: _Optional[int] = ..., dtype: _Optional[str] = ..., normalization: _Optional[_Union[Normalization, _Mapping]] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("kind", "step_size", "gamma", "power", "min_lr", "factor", "patience", "threshold", "cooldown", "monitor")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    GAMMA_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    MIN_LR_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    kind: str
    step_size: int
    gamma: float
    power: float
    min_lr: float
    factor: float
    patience: int
    threshold: float
    cooldown: int
    monitor: str
    def __init__(self, kind: _Optional[str] = ..., step_size: _Optional[int] = ..., gamma: _Optional[float] = ..., power: _Optional[float] = ..., min_lr: _Optional[float] = ..., factor: _Optional[float] = ..., patience: _Optional[int] = ..., threshold: _Optional[float] = ..., cooldown: _Optional[int] = ..., monitor: _Optional[str] = ...) -> None: ...

class Optimizer(_message.Message):
    __slots__ = ("kind", "learning_rate", "momentum", "beta1", "beta2", "rho", "epsilon", "weight_decay", "clip_norm", "schedule")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    CLIP_NORM_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    learning_rate: float
    momentum: float
    beta1: float
    beta2: float
    rho: float
    epsilon: float
    weight_decay: float
    clip_norm: float
    schedule: Schedule
    def __init__(self, kind: _Optional[str] = ..., learning_rate: _Optional[float] = ..., momentum: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., rho: _Optional[float] = ..., epsilon: _Optional[float] = ..., weight_decay: _Optional[float] = ..., clip_norm: _Optional[float] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class EarlyStopping(_message.Message):
    __slots__ = ("patience", "min_delta", "restore_best", "monitor")
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_FIELD_NUMBER: _ClassVar[int]
    RESTORE_BEST_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    patience: int
    min_delta: float
    restore_best: bool
    monitor: str
    def __init__(self, patience: _Optional[int] = ..., min_delta: _Optional[float] = ..., restore_best: _Optional[bool] = ..., monitor: _Optional[str] = ...) -> None: ...

class Training(_message.Message):
    __slots__ = ("epochs", "batch_size", "shuffle", "seed", "validation_fraction", "early_stopping", "threads", "time_limit_seconds", "max_retries", "class_weight")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    CLASS_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    batch_size: int
    shuffle: bool
    seed: int
    validation_fraction: float
    early_stopping: EarlyStopping
    threads: int
    time_limit_seconds: float
    max_retries: int
    class_weight: ClassWeight
    def __init__(self, epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., shuffle: _Optional[bool] = ..., seed: _Optional[int] = ..., validation_fraction: _Optional[float] = ..., early_stopping: _Optional[_Union[EarlyStopping, _Mapping]] = ..., threads: _Optional[int] = ..., time_limit_seconds: _Optional[float] = ..., max_retries: _Optional[int] = ..., class_weight: _Optional[_Union[ClassWeight, _Mapping]] = ...) -> None: ...

class ClassWeight(_message.Message):
    __slots__ = ("balanced", "weights")
    BALANCED_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    balanced: bool
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, balanced: _Optional[bool] = ..., weights: _Optional[_Iterable[float]] = ...) -> None: ...

class LocalFile(_message.Message):
    __slots__ = ("path", "labels", "target", "header", "one_hot", "delimiter")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ONE_HOT_FIELD_NUMBER: _ClassVar[int]
    DELIMITER_FIELD_NUMBER: _ClassVar[int]
    path: str
    labels: str
    target: int
    header: bool
    one_hot: bool
    delimiter: str
    def __init__(self, path: _Optional[str] = ..., labels: _Optional[str] = ..., target: _Optional[int] = ..., header: _Optional[bool] = ..., one_hot: _Optional[bool] = ..., delimiter: _Optional[str] = ...) -> None: ...

class DataSource(_message.Message):
    __slots__ = ("dataset_id", "x_array", "y_array", "x", "y", "file", "weight_array", "sample_weight")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    X_ARRAY_FIELD_NUMBER: _ClassVar[int]
    Y_ARRAY_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_ARRAY_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    x_array: str
    y_array: str
    x: Tensor
    y: Tensor
    file: LocalFile
    weight_array: str
    sample_weight: Tensor
    def __init__(self, dataset_id: _Optional[str] = ..., x_array: _Optional[str] = ..., y_array: _Optional[str] = ..., x: _Optional[_Union[Tensor, _Mapping]] = ..., y: _Optional[_Union[Tensor, _Mapping]] = ..., file: _Optional[_Union[LocalFile, _Mapping]] = ..., weight_array: _Optional[str] = ..., sample_weight: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class CrossValidation(_message.Message):
    __slots__ = ("folds", "fold", "seed", "stratify", "repeats", "repeat")
    FOLDS_FIELD_NUMBER: _ClassVar[int]
    FOLD_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STRATIFY_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    REPEAT_FIELD_NUMBER: _ClassVar[int]
    folds: int
    fold: int
    seed: int
    stratify: bool
    repeats: int
    repeat: int
    def __init__(self, folds: _Optional[int] = ..., fold: _Optional[int] = ..., seed: _Optional[int] = ..., stratify: _Optional[bool] = ..., repeats: _Optional[int] = ..., repeat: _Optional[int] = ...) -> None: ...

class Data(_message.Message):
    __slots__ = ("train", "validation", "cross_validation", "class_names")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    CROSS_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    train: DataSource
    validation: DataSource
    cross_validation: CrossValidation
    class_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, train: _Optional[_Union[DataSource, _Mapping]] = ..., validation: _Optional[_Union[DataSource, _Mapping]] = ..., cross_validation: _Optional[_Union[CrossValidation, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "labels", "model", "optimizer", "training", "data", "priority", "search")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    model: Model
    optimizer: Optimizer
    training: Training
    data: Data
    priority: int
    search: Search
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., model: _Optional[_Union[Model, _Mapping]] = ..., optimizer: _Optional[_Union[Optimizer, _Mapping]] = ..., training: _Optional[_Union[Training, _Mapping]] = ..., data: _Optional[_Union[Data, _Mapping]] = ..., priority: _Optional[int] = ..., search: _Optional[_Union[Search, _Mapping]] = ...) -> None: ...

class Search(_message.Message):
    __slots__ = ("kind", "params", "candidates", "max_epochs", "min_epochs", "eta", "seed", "metric")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MIN_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    kind: str
    params: _containers.RepeatedCompositeFieldContainer[SearchParam]
    candidates: int
    max_epochs: int
    min_epochs: int
    eta: float
    seed: int
    metric: str
    def __init__(self, kind: _Optional[str] = ..., params: _Optional[_Iterable[_Union[SearchParam, _Mapping]]] = ..., candidates: _Optional[int] = ..., max_epochs: _Optional[int] = ..., min_epochs: _Optional[int] = ..., eta: _Optional[float] = ..., seed: _Optional[int] = ..., metric: _Optional[str] = ...) -> None: ...

class SearchParam(_message.Message):
    __slots__ = ("field", "distribution", "low", "high", "choices")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    field: str
    distribution: str
    low: float
    high: float
    choices: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Value]
    def __init__(self, field: _Optional[str] = ..., distribution: _Optional[str] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., choices: _Optional[_Iterable[_Union[_struct_pb2.Value, _Mapping]]] = ...) -> None: ...
