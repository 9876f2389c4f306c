import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from fusetrain.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    CANCELLING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]

class FailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_REASON_UNSPECIFIED: _ClassVar[FailureReason]
    INVALID_DATA: _ClassVar[FailureReason]
    DIVERGED: _ClassVar[FailureReason]
    TIME_LIMIT: _ClassVar[FailureReason]
    WORKER_CRASHED: _ClassVar[FailureReason]
    ENGINE_ERROR: _ClassVar[FailureReason]
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
RUNNING: JobState
CANCELLING: JobState
SUCCEEDED: JobState
FAILED: JobState
CANCELLED: JobState
FAILURE_REASON_UNSPECIFIED: FailureReason
INVALID_DATA: FailureReason
DIVERGED: FailureReason
TIME_LIMIT: FailureReason
WORKER_CRASHED: FailureReason
ENGINE_ERROR: FailureReason

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_message_bytes", "max_dataset_bytes", "max_parameters", "max_epochs", "max_queued_jobs", "max_batch_jobs", "max_job_seconds", "max_threads", "max_rows", "max_layers", "max_units", "max_client_jobs", "max_labels", "max_dataset_decoded_bytes", "max_streams", "max_client_streams", "max_batch_spec_bytes", "max_predict_rows", "max_predict_calls", "max_predict_cache_bytes", "max_job_memory_bytes", "max_reply_bytes", "max_upload_idle_seconds", "max_history_rows")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DATASET_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MAX_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_JOB_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_THREADS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MAX_UNITS_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIENT_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_LABELS_FIELD_NUMBER: _ClassVar[int]
    MAX_DATASET_DECODED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIENT_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SPEC_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PREDICT_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_PREDICT_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_PREDICT_CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_JOB_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_UPLOAD_IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_HISTORY_ROWS_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_dataset_bytes: int
    max_parameters: int
    max_epochs: int
    max_queued_jobs: int
    max_batch_jobs: int
    max_job_seconds: float
    max_threads: int
    max_rows: int
    max_layers: int
    max_units: int
    max_client_jobs: int
    max_labels: int
    max_dataset_decoded_bytes: int
    max_streams: int
    max_client_streams: int
    max_batch_spec_bytes: int
    max_predict_rows: int
    max_predict_calls: int
    max_predict_cache_bytes: int
    max_job_memory_bytes: int
    max_reply_bytes: int
    max_upload_idle_seconds: float
    max_history_rows: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_dataset_bytes: _Optional[int] = ..., max_parameters: _Optional[int] = ..., max_epochs: _Optional[int] = ..., max_queued_jobs: _Optional[int] = ..., max_batch_jobs: _Optional[int] = ..., max_job_seconds: _Optional[float] = ..., max_threads: _Optional[int] = ..., max_rows: _Optional[int] = ..., max_layers: _Optional[int] = ..., max_units: _Optional[int] = ..., max_client_jobs: _Optional[int] = ..., max_labels: _Optional[int] = ..., max_dataset_decoded_bytes: _Optional[int] = ..., max_streams: _Optional[int] = ..., max_client_streams: _Optional[int] = ..., max_batch_spec_bytes: _Optional[int] = ..., max_predict_rows: _Optional[int] = ..., max_predict_calls: _Optional[int] = ..., max_predict_cache_bytes: _Optional[int] = ..., max_job_memory_bytes: _Optional[int] = ..., max_reply_bytes: _Optional[int] = ..., max_upload_idle_seconds: _Optional[float] = ..., max_history_rows: _Optional[int] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "activations", "losses", "optimizers", "initializers", "schedules", "dtypes", "limits", "workers", "threads_per_worker", "executor", "kernels")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZERS_FIELD_NUMBER: _ClassVar[int]
    INITIALIZERS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    DTYPES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    THREADS_PER_WORKER_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    version: str
    activations: _containers.RepeatedScalarFieldContainer[str]
    losses: _containers.RepeatedScalarFieldContainer[str]
    optimizers: _containers.RepeatedScalarFieldContainer[str]
    initializers: _containers.RepeatedScalarFieldContainer[str]
    schedules: _containers.RepeatedScalarFieldContainer[str]
    dtypes: _containers.RepeatedScalarFieldContainer[str]
    limits: Limits
    workers: int
    threads_per_worker: int
    executor: str
    kernels: _containers.RepeatedCompositeFieldContainer[KernelState]
    def __init__(self, version: _Optional[str] = ..., activations: _Optional[_Iterable[str]] = ..., losses: _Optional[_Iterable[str]] = ..., optimizers: _Optional[_Iterable[str]] = ..., initializers: _Optional[_Iterable[str]] = ..., schedules: _Optional[_Iterable[str]] = ..., dtypes: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., workers: _Optional[int] = ..., threads_per_worker: _Optional[int] = ..., executor: _Optional[str] = ..., kernels: _Optional[_Iterable[_Union[KernelState, _Mapping]]] = ...) -> None: ...

class KernelState(_message.Message):
    __slots__ = ("dtype", "state", "workers_ready", "seconds", "families_ready", "families")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_READY_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_READY_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    state: str
    workers_ready: int
    seconds: float
    families_ready: int
    families: int
    def __init__(self, dtype: _Optional[str] = ..., state: _Optional[str] = ..., workers_ready: _Optional[int] = ..., seconds: _Optional[float] = ..., families_ready: _Optional[int] = ..., families: _Optional[int] = ...) -> None: ...

class UploadDatasetRequest(_message.Message):
    __slots__ = ("name", "format", "chunk")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: str
    chunk: bytes
    def __init__(self, name: _Optional[str] = ..., format: _Optional[str] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class Array(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("id_prefix",)
    ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    id_prefix: str
    def __init__(self, id_prefix: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("id", "name", "size_bytes", "arrays", "already_present", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    size_bytes: int
    arrays: _containers.RepeatedCompositeFieldContainer[Array]
    already_present: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., arrays: _Optional[_Iterable[_Union[Array, _Mapping]]] = ..., already_present: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "request_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    spec: _job_pb2.JobSpec
    request_id: str
    def __init__(self, spec: _Optional[_Union[_job_pb2.JobSpec, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GridAxis(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Value]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_struct_pb2.Value, _Mapping]]] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("specs", "base", "grid", "request_id", "labels", "search")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SPECS_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[_job_pb2.JobSpec]
    base: _job_pb2.JobSpec
    grid: _containers.RepeatedCompositeFieldContainer[GridAxis]
    request_id: str
    labels: _containers.ScalarMap[str, str]
    search: _job_pb2.Search
    def __init__(self, specs: _Optional[_Iterable[_Union[_job_pb2.JobSpec, _Mapping]]] = ..., base: _Optional[_Union[_job_pb2.JobSpec, _Mapping]] = ..., grid: _Optional[_Iterable[_Union[GridAxis, _Mapping]]] = ..., request_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., search: _Optional[_Union[_job_pb2.Search, _Mapping]] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("batch_id", "jobs")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, batch_id: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "samples_per_second", "val_macro_f1", "val_mae", "val_rmse", "val_r2")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    VAL_MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    VAL_MAE_FIELD_NUMBER: _ClassVar[int]
    VAL_RMSE_FIELD_NUMBER: _ClassVar[int]
    VAL_R2_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float
    samples_per_second: float
    val_macro_f1: float
    val_mae: float
    val_rmse: float
    val_r2: float
    def __init__(self, epoch: _Optional[int] = ..., train_loss: _Optional[float] = ..., train_accuracy: _Optional[float] = ..., val_loss: _Optional[float] = ..., val_accuracy: _Optional[float] = ..., learning_rate: _Optional[float] = ..., seconds: _Optional[float] = ..., samples_per_second: _Optional[float] = ..., val_macro_f1: _Optional[float] = ..., val_mae: _Optional[float] = ..., val_rmse: _Optional[float] = ..., val_r2: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "spec", "request_id", "batch_id", "failure_reason", "message", "attempt", "epochs_done", "epochs_total", "latest", "created_at", "started_at", "finished_at", "has_result", "name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_DONE_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    HAS_RESULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    spec: _job_pb2.JobSpec
    request_id: str
    batch_id: str
    failure_reason: FailureReason
    message: str
    attempt: int
    epochs_done: int
    epochs_total: int
    latest: EpochMetrics
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    has_result: bool
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., spec: _Optional[_Union[_job_pb2.JobSpec, _Mapping]] = ..., request_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., failure_reason: _Optional[_Union[FailureReason, str]] = ..., message: _Optional[str] = ..., attempt: _Optional[int] = ..., epochs_done: _Optional[int] = ..., epochs_total: _Optional[int] = ..., latest: _Optional[_Union[EpochMetrics, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_result: _Optional[bool] = ..., name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "labels", "batch_id", "page_size", "page_token", "include_spec")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SPEC_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[JobState]
    labels: _containers.ScalarMap[str, str]
    batch_id: str
    page_size: int
    page_token: str
    include_spec: bool
    def __init__(self, states: _Optional[_Iterable[_Union[JobState, str]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., batch_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_spec: _Optional[bool] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "after_sequence")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_sequence: int
    def __init__(self, job_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class StateChange(_message.Message):
    __slots__ = ("state", "failure_reason", "message", "attempt")
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    failure_reason: FailureReason
    message: str
    attempt: int
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., failure_reason: _Optional[_Union[FailureReason, str]] = ..., message: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "sequence", "time", "state", "epoch")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    state: StateChange
    epoch: EpochMetrics
    def __init__(self, job_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[StateChange, _Mapping]] = ..., epoch: _Optional[_Union[EpochMetrics, _Mapping]] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[JobEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[JobEvent, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "force")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    force: bool
    def __init__(self, job_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetResultRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ConfusionMatrix(_message.Message):
    __slots__ = ("shape", "counts")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    counts: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., counts: _Optional[_Iterable[float]] = ...) -> None: ...

class FinalMetrics(_message.Message):
    __slots__ = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "train_macro_f1", "val_macro_f1", "train_mae", "train_rmse", "train_r2", "val_mae", "val_rmse", "val_r2", "train_confusion", "val_confusion")
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TRAIN_MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    VAL_MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    TRAIN_MAE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_RMSE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_R2_FIELD_NUMBER: _ClassVar[int]
    VAL_MAE_FIELD_NUMBER: _ClassVar[int]
    VAL_RMSE_FIELD_NUMBER: _ClassVar[int]
    VAL_R2_FIELD_NUMBER: _ClassVar[int]
    TRAIN_CONFUSION_FIELD_NUMBER: _ClassVar[int]
    VAL_CONFUSION_FIELD_NUMBER: _ClassVar[int]
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    train_macro_f1: float
    val_macro_f1: float
    train_mae: float
    train_rmse: float
    train_r2: float
    val_mae: float
    val_rmse: float
    val_r2: float
    train_confusion: ConfusionMatrix
    val_confusion: ConfusionMatrix
    def __init__(self, train_loss: _Optional[float] = ..., train_accuracy: _Optional[float] = ..., val_loss: _Optional[float] = ..., val_accuracy: _Optional[float] = ..., train_macro_f1: _Optional[float] = ..., val_macro_f1: _Optional[float] = ..., train_mae: _Optional[float] = ..., train_rmse: _Optional[float] = ..., train_r2: _Optional[float] = ..., val_mae: _Optional[float] = ..., val_rmse: _Optional[float] = ..., val_r2: _Optional[float] = ..., train_confusion: _Optional[_Union[ConfusionMatrix, _Mapping]] = ..., val_confusion: _Optional[_Union[ConfusionMatrix, _Mapping]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queued_seconds", "compile_seconds", "train_seconds", "total_seconds")
    QUEUED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMPILE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queued_seconds: float
    compile_seconds: float
    train_seconds: float
    total_seconds: float
    def __init__(self, queued_seconds: _Optional[float] = ..., compile_seconds: _Optional[float] = ..., train_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ...) -> None: ...

class LayerWeights(_message.Message):
    __slots__ = ("weights", "bias")
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    weights: _job_pb2.Tensor
    bias: _job_pb2.Tensor
    def __init__(self, weights: _Optional[_Union[_job_pb2.Tensor, _Mapping]] = ..., bias: _Optional[_Union[_job_pb2.Tensor, _Mapping]] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("job_id", "state", "stop_reason", "layers", "history", "final", "timings", "weights_sha256", "attempt", "epochs_run", "best_epoch", "dtype", "normalization", "blas_kernel", "class_names", "search")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_RUN_FIELD_NUMBER: _ClassVar[int]
    BEST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    BLAS_KERNEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    stop_reason: str
    layers: _containers.RepeatedCompositeFieldContainer[LayerWeights]
    history: _containers.RepeatedCompositeFieldContainer[EpochMetrics]
    final: FinalMetrics
    timings: Timings
    weights_sha256: str
    attempt: int
    epochs_run: int
    best_epoch: int
    dtype: str
    normalization: _job_pb2.Normalization
    blas_kernel: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    search: SearchResult
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., stop_reason: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[LayerWeights, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[EpochMetrics, _Mapping]]] = ..., final: _Optional[_Union[FinalMetrics, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., weights_sha256: _Optional[str] = ..., attempt: _Optional[int] = ..., epochs_run: _Optional[int] = ..., best_epoch: _Optional[int] = ..., dtype: _Optional[str] = ..., normalization: _Optional[_Union[_job_pb2.Normalization, _Mapping]] = ..., blas_kernel: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., search: _Optional[_Union[SearchResult, _Mapping]] = ...) -> None: ...

class SearchRung(_message.Message):
    __slots__ = ("epochs", "value")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    value: float
    def __init__(self, epochs: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...

class SearchCandidate(_message.Message):
    __slots__ = ("index", "params", "rungs", "epochs", "value", "diverged")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    RUNGS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DIVERGED_FIELD_NUMBER: _ClassVar[int]
    index: int
    params: _struct_pb2.Struct
    rungs: _containers.RepeatedCompositeFieldContainer[SearchRung]
    epochs: int
    value: float
    diverged: bool
    def __init__(self, index: _Optional[int] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., rungs: _Optional[_Iterable[_Union[SearchRung, _Mapping]]] = ..., epochs: _Optional[int] = ..., value: _Optional[float] = ..., diverged: _Optional[bool] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("kind", "metric", "candidates", "winner", "winner_spec", "model_epochs", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    WINNER_SPEC_FIELD_NUMBER: _ClassVar[int]
    MODEL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    metric: str
    candidates: _containers.RepeatedCompositeFieldContainer[SearchCandidate]
    winner: int
    winner_spec: _job_pb2.JobSpec
    model_epochs: int
    value: float
    def __init__(self, kind: _Optional[str] = ..., metric: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[SearchCandidate, _Mapping]]] = ..., winner: _Optional[int] = ..., winner_spec: _Optional[_Union[_job_pb2.JobSpec, _Mapping]] = ..., model_epochs: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("job_id", "x")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    x: _job_pb2.Tensor
    def __init__(self, job_id: _Optional[str] = ..., x: _Optional[_Union[_job_pb2.Tensor, _Mapping]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("y", "class_names")
    Y_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    y: _job_pb2.Tensor
    class_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, y: _Optional[_Union[_job_pb2.Tensor, _Mapping]] = ..., class_names: _Optional[_Iterable[str]] = ...) -> None: ...
