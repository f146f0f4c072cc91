"""Scale-out on the existing engines: one strategy object for training on several devices
or machines, on the TensorFlow backend (``tf.distribute``) and the JAX backend
(``keras.distribution``).

    dist = strategy_for("mirrored")                  # or "multiworker", "dataparallel", None
    plan = dist.plan(global_batch=256, learning_rate=0.1, reference_batch=64)
    log(plan.describe())                             # global batch, per-replica batch, LR scaling
    with dist.scope():                               # build, compile AND fit under the scope
        model = build_and_compile(config, learning_rate=plan.learning_rate)
        model.fit(dist.distribute_dataset(ds), ...)

Kinds
-----
``None`` / ``"none"``: one device, the framework's default (a no-op wrapper).
``"mirrored"``: ``tf.distribute.MirroredStrategy``, synchronous data parallelism over the
GPUs of one machine (TensorFlow backend).
``"multiworker"``: ``tf.distribute.MultiWorkerMirroredStrategy``, the same over several
machines; each process reads the standard ``TF_CONFIG`` JSON (validated here, with errors
that name what is wrong). Must be created before TensorFlow runs anything else.
``"dataparallel"``: ``keras.distribution.DataParallel`` (JAX backend), batches split over
all local devices; several hosts when ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` /
``KERAS_DISTRIBUTION_NUM_PROCESSES`` / ``KERAS_DISTRIBUTION_PROCESS_ID`` (or the ``JAX_*``
equivalents) are set, through ``keras.distribution.initialize`` (``jax.distributed``).

Batches and learning rate
-------------------------
The batch size in a config is the GLOBAL batch: one optimizer step averages the gradient over
``global_batch`` examples, whatever the number of replicas; each replica gets
``global_batch / num_replicas`` of them (it must divide). Same global batch and same data order
give the same training as on one device, up to floating-point summation order.
With ``reference_batch`` set, the learning rate follows the linear scaling rule
(Goyal et al. 2017): ``lr = base_lr * global_batch / reference_batch``; ``rule="sqrt"`` uses the
square root of that ratio; no ``reference_batch`` leaves the learning rate as given.

Datasets
--------
``model.fit`` distributes a ``tf.data.Dataset`` itself (``experimental_distribute_dataset``
under a tf.distribute strategy; ``DataParallel.distribute_dataset`` on JAX).
:meth:`Distribution.distribute_dataset` only sets the multi-worker auto-shard policy:
``FILE`` for datasets read from several files (TFRecord shards, :mod:`labelwise.data.shards`) --
each worker opens only its own files, so decoding is split between workers -- and ``DATA``
for everything else (arrays, lists of image paths): every worker runs the whole input
pipeline and keeps its slice of each batch, correct but redundant decode work.
JAX ``dataparallel`` over several processes builds its ``DataParallel`` with
``auto_shard_dataset=False`` and labelwise feeds each process its own contiguous slice of
every global batch (:attr:`Distribution.process_shard` for the table pipeline, which shards
indices before decoding; :meth:`Distribution.local_batches` for shards, after decoding);
predictions there go through a process-local twin (:meth:`Distribution.predicting`).
This module imports TensorFlow / Keras only when a strategy is created.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import LabelwiseError

__all__ = [
    "KINDS", "BatchPlan", "Distribution", "TFConfig", "strategy_for", "parse_tf_config",
    "check_backend", "scale_learning_rate", "sync_batchnorm",
]

logger = logging.getLogger("labelwise.training.distribute")

KINDS = ("none", "mirrored", "multiworker", "dataparallel")
_TF_KINDS = ("mirrored", "multiworker")
_JAX_KINDS = ("dataparallel",)

_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
)


class DistributeError(LabelwiseError):
    """The distribution settings are wrong: unknown kind, wrong backend, bad TF_CONFIG, batch mismatch."""


# ------------------------------------------------------------------ pure helpers
def check_backend(kind: str, backend: str) -> None:
    """Raise :class:`DistributeError` when ``kind`` cannot run on the Keras ``backend``."""
    if kind not in KINDS:
        raise DistributeError(f"unknown distribution {kind!r}; choose one of {', '.join(KINDS)}")
    if kind in _TF_KINDS and backend != "tensorflow":
        raise DistributeError(
            f"--distribute {kind} uses tf.distribute and needs the TensorFlow backend, but Keras runs on "
            f"{backend!r}; on JAX use --distribute dataparallel (or set KERAS_BACKEND=tensorflow)"
        )
    if kind in _JAX_KINDS and backend != "jax":
        raise DistributeError(
            f"--distribute {kind} uses keras.distribution and needs the JAX backend, but Keras runs on "
            f"{backend!r}; on TensorFlow use --distribute mirrored (one machine) or multiworker "
            "(several machines), or set KERAS_BACKEND=jax"
        )


@dataclass(frozen=True)
class TFConfig:
    """The parts of a validated ``TF_CONFIG`` that labelwise uses."""

    cluster: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        """Processes that train: the chief (if any) plus the workers."""
        return len(self.cluster.get("chief", [])) + len(self.cluster.get("worker", []))

    @property
    def worker_index(self) -> int:
        """0 for the chief (or worker 0 when there is no chief), then the workers in order."""
        offset = len(self.cluster.get("chief", [])) if self.task_type == "worker" else 0
        return offset + self.task_index

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0


def parse_tf_config(text: str | None) -> TFConfig:
    """Validate the ``TF_CONFIG`` JSON text; every error says which field is wrong and shows an example.

    Contract: ``cluster`` maps ``"worker"`` (and optionally one ``"chief"``) to lists of
    ``"host:port"`` strings, all different; ``task`` is ``{"type": "worker"|"chief", "index": i}``
    with ``0 <= i < len(cluster[type])``.
    """
    hint = f"; a valid TF_CONFIG for worker 0 of two looks like {_TF_CONFIG_EXAMPLE}"
    if text is None or not text.strip():
        raise DistributeError(
            "--distribute multiworker needs the TF_CONFIG environment variable on every machine, "
            "naming all workers and this process's place among them" + hint)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({e})" + hint) from None
    if not isinstance(data, dict):
        raise DistributeError(f"TF_CONFIG must be a JSON object, got {type(data).__name__}" + hint)
    cluster, task = data.get("cluster"), data.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise DistributeError("TF_CONFIG has no 'cluster' object listing the workers" + hint)
    if not isinstance(task, dict):
        raise DistributeError("TF_CONFIG has no 'task' object saying which worker this process is" + hint)
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise DistributeError(
            f"TF_CONFIG cluster has job(s) {sorted(unknown)}; multiworker training uses only 'worker' "
            "(and optionally one 'chief'); parameter servers and evaluators are not supported" + hint)
    seen: dict[str, str] = {}
    clean: dict[str, list[str]] = {}
    for job, addresses in cluster.items():
        if isinstance(addresses, str) or not isinstance(addresses, list) or not addresses:
            raise DistributeError(f"TF_CONFIG cluster.{job} must be a non-empty list of 'host:port' strings, "
                                  f"got {addresses!r}" + hint)
        for i, addr in enumerate(addresses):
            host, _, port = str(addr).rpartition(":")
            if not isinstance(addr, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise DistributeError(f"TF_CONFIG cluster.{job}[{i}] = {addr!r} is not a 'host:port' address "
                                      "with a port number 1-65535" + hint)
            if addr in seen:
                raise DistributeError(f"TF_CONFIG lists {addr!r} twice ({seen[addr]} and {job}[{i}]); "
                                      "each worker needs its own host:port")
            seen[addr] = f"{job}[{i}]"
        clean[job] = list(addresses)
    if len(clean.get("chief", [])) > 1:
        raise DistributeError("TF_CONFIG cluster.chief must list exactly one address")
    ttype, index = task.get("type"), task.get("index")
    if ttype not in clean:
        raise DistributeError(f"TF_CONFIG task.type is {ttype!r}, but the cluster has only "
                              f"{sorted(clean)}; set task.type to one of them" + hint)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(clean[ttype]):
        raise DistributeError(f"TF_CONFIG task.index is {index!r}, but cluster.{ttype} has "
                              f"{len(clean[ttype])} address(es): use 0..{len(clean[ttype]) - 1}, a different "
                              "index on each machine" + hint)
    return TFConfig(clean, ttype, index)


def scale_learning_rate(learning_rate: float, global_batch: int, reference_batch: int | None = None,
                        rule: str = "linear") -> float:
    """Learning rate for ``global_batch`` given one tuned at ``reference_batch``.

    ``linear``: ``lr * global_batch / reference_batch``; ``sqrt``: ``lr * sqrt(global_batch /
    reference_batch)``; ``none`` or ``reference_batch=None``: ``lr`` unchanged.
    """
    if rule not in ("linear", "sqrt", "none"):
        raise DistributeError(f"unknown learning-rate scaling rule {rule!r}; use linear, sqrt or none")
    if reference_batch is None or rule == "none":
        return float(learning_rate)
    if reference_batch < 1:
        raise DistributeError(f"reference batch size must be positive, got {reference_batch}")
    ratio = global_batch / reference_batch
    return float(learning_rate) * (ratio if rule == "linear" else math.sqrt(ratio))


@dataclass(frozen=True)
class BatchPlan:
    """Global/per-replica batch sizes and the (scaled) learning rate of one run."""

    kind: str
    num_replicas: int
    num_workers: int
    global_batch: int
    per_replica_batch: int
    base_learning_rate: float
    learning_rate: float
    reference_batch: int | None
    rule: str

    def describe(self) -> str:
        """One log line with everything that decides the optimisation: batch split and LR scaling."""
        if self.reference_batch is None or self.rule == "none":
            lr = f"learning rate {self.learning_rate:g} (not scaled)"
        else:
            lr = (f"learning rate {self.base_learning_rate:g} -> {self.learning_rate:g} "
                  f"({self.rule} scaling, reference batch {self.reference_batch})")
        return (f"distribution {self.kind}: {self.num_replicas} replica(s) on {self.num_workers} worker(s); "
                f"global batch {self.global_batch} = {self.per_replica_batch} per replica x "
                f"{self.num_replicas}; {lr}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ------------------------------------------------------------------ the wrapper
@dataclass
class Distribution:
    """A strategy plus what training needs to know about it (see the module docstring).

    ``strategy`` is the ``tf.distribute.Strategy``, the ``keras.distribution.DataParallel``, or
    None for one device.
    """

    kind: str
    backend: str
    strategy: Any = None
    num_replicas: int = 1
    num_workers: int = 1
    worker_index: int = 0
    devices: list[str] = field(default_factory=list)
    _local: Any = field(default=None, repr=False, compare=False)  # (model, its process-local twin)

    @property
    def multi_process(self) -> bool:
        """True for JAX DataParallel over several processes (``jax.distributed``): each process
        must feed only its own part of every global batch, and cannot fetch batch-sharded outputs."""
        return self.kind == "dataparallel" and self.num_workers > 1

    @property
    def process_shard(self) -> tuple[int, int, int] | None:
        """``(process_count, process_index, num_replicas)`` under :attr:`multi_process`, else None:
        what :func:`labelwise.data.pipeline.make_epoch_dataset` needs to read only this process's rows."""
        return (self.num_workers, self.worker_index, self.num_replicas) if self.multi_process else None

    @property
    def is_chief(self) -> bool:
        """True on the one process that writes the shared outputs (logs, final model, report)."""
        return self.worker_index == 0

    def scope(self) -> "_Scope":
        """Build, compile and fit the model inside this scope (reusable: ``s = d.scope()`` may be
        entered again and again, as ``tf.distribute`` scopes can).

        TensorFlow: ``strategy.scope()`` makes variables mirrored. JAX: the ``DataParallel`` is the
        current distribution, which both variable creation and ``fit`` read.
        """
        return _Scope(self)

    def global_batch_size(self, per_replica: int) -> int:
        """``per_replica * num_replicas``."""
        return int(per_replica) * self.num_replicas

    def per_replica_batch(self, global_batch: int) -> int:
        """``global_batch / num_replicas``; a :class:`DistributeError` when it does not divide."""
        global_batch = int(global_batch)
        if global_batch < self.num_replicas or global_batch % self.num_replicas:
            lo = max(self.num_replicas, global_batch // self.num_replicas * self.num_replicas)
            raise DistributeError(
                f"global batch size {global_batch} cannot be split evenly over {self.num_replicas} replicas "
                f"({self.kind}); use a multiple of {self.num_replicas}, e.g. {lo} or {lo + self.num_replicas}")
        return global_batch // self.num_replicas

    def plan(self, global_batch: int, learning_rate: float, *, reference_batch: int | None = None,
             rule: str = "linear", log: bool = True) -> BatchPlan:
        """Split ``global_batch`` over the replicas and scale ``learning_rate``; log the result."""
        per = self.per_replica_batch(global_batch)
        lr = scale_learning_rate(learning_rate, global_batch, reference_batch, rule)
        plan = BatchPlan(self.kind, self.num_replicas, self.num_workers, int(global_batch), per,
                         float(learning_rate), lr, reference_batch, rule)
        if log:
            logger.info(plan.describe())
        return plan

    def distribute_dataset(self, dataset: Any, policy: str = "auto") -> Any:
        """Set the multi-worker auto-shard policy of a ``tf.data.Dataset`` (others pass through).

        ``policy``: ``"file"`` (each worker reads its own files; needs at least as many files as
        workers), ``"data"`` (each worker keeps every n-th element), ``"off"``, or ``"auto"``
        (TensorFlow tries FILE and falls back to DATA). ``model.fit`` does the actual split.
        """
        names = {"auto": "AUTO", "file": "FILE", "data": "DATA", "off": "OFF"}
        if policy not in names:
            raise DistributeError(f"unknown auto-shard policy {policy!r}; use one of {sorted(names)}")
        import tensorflow as tf

        if not isinstance(dataset, tf.data.Dataset):
            return dataset
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = getattr(tf.data.experimental.AutoShardPolicy,
                                                                    names[policy])
        return dataset.with_options(options)

    def even_batches(self, dataset: Any) -> Any:
        """Make every batch of a batched ``tf.data.Dataset`` a multiple of ``num_replicas`` (JAX
        DataParallel only; other kinds return ``dataset`` unchanged).

        DataParallel splits each batch evenly over the devices, so a last partial batch of, say,
        5 images on 2 devices fails (jax ``IndivisibleError``). An uneven batch is padded by
        repeating its last example: in prediction the extra rows come last, so keep
        ``predictions[:n]``; in training at most ``num_replicas - 1`` examples per epoch count
        twice, and the number of steps per epoch does not change.
        """
        if self.kind != "dataparallel" or self.num_replicas == 1:
            return dataset
        import tensorflow as tf

        r = self.num_replicas

        def pad(*batch: Any) -> Any:
            n = tf.shape(tf.nest.flatten(batch)[0])[0]
            take = tf.minimum(tf.range(((n + r - 1) // r) * r), n - 1)
            out = tf.nest.map_structure(lambda t: tf.gather(t, take), batch)
            return out[0] if len(out) == 1 else out

        return dataset.map(pad, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def local_batches(self, dataset: Any) -> Any:
        """The batches this process feeds ``model.fit``, from a stream of GLOBAL batches.

        One process (and every kind but multi-process dataparallel): :meth:`even_batches`.
        Several JAX processes: Keras builds each global batch from the processes' local batches
        in process order (``jax.make_array_from_process_local_data``) and, with
        ``auto_shard_dataset=False`` (see :func:`strategy_for`), does not split the dataset
        itself; so each global batch is padded as in :meth:`even_batches` and this process keeps
        its contiguous ``1 / process_count`` slice. Every process still reads and decodes the
        whole stream -- correct, but redundant; the table path avoids that by sharding indices
        before decoding (``make_epoch_dataset(process_shard=...)``).
        """
        dataset = self.even_batches(dataset)
        if not self.multi_process:
            return dataset
        import tensorflow as tf

        count, index = self.num_workers, self.worker_index

        def mine(*batch: Any) -> Any:
            part = tf.shape(tf.nest.flatten(batch)[0])[0] // count
            out = tf.nest.map_structure(lambda t: t[index * part:(index + 1) * part], batch)
            return out[0] if len(out) == 1 else out

        return dataset.map(mine, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    @contextlib.contextmanager
    def predicting(self, model: Any):
        """``with dist.predicting(model) as m: m.predict(...)`` -- a model this process can predict
        with: ``model`` itself, except under :attr:`multi_process`, where ``m`` is a twin built
        outside the distribution (on this process's default device) holding ``model``'s current
        weights, and no distribution is in force inside the ``with``.

        Why: ``model.predict`` under a multi-process DataParallel returns batch-sharded arrays
        that span other processes' devices, and Keras' ``predict`` cannot fetch them
        ("Fetching value for jax.Array that spans non-addressable devices"). The weights are
        replicated, so every process can copy them; each then predicts the whole (validation or
        test) set itself. The twin is built once per model and refreshed on every call.
        """
        if not self.multi_process:
            yield model
            return
        import keras

        current = keras.distribution.distribution()
        keras.distribution.set_distribution(None)  # the twin's variables and inputs stay on this process
        try:
            if self._local is None or self._local[0] is not model:
                self._local = (model, keras.models.clone_model(model))
            twin = self._local[1]
            twin.set_weights(model.get_weights())  # replicated arrays: readable on every process
            yield twin
        finally:
            keras.distribution.set_distribution(current)

    def worker_path(self, path: str | os.PathLike) -> Path:
        """Where this process writes ``path``: the path itself on the chief, a private
        ``.worker-<i>/`` folder beside it on other workers (every MultiWorkerMirroredStrategy
        worker must save, since saving is collective, but only the chief's copy is kept)."""
        path = Path(path)
        return path if self.is_chief else path.parent / f".worker-{self.worker_index}" / path.name

    def describe(self) -> str:
        return (f"{self.kind} on {self.backend}: {self.num_replicas} replica(s), worker {self.worker_index} of "
                f"{self.num_workers}" + (f", devices {', '.join(self.devices)}" if self.devices else ""))


class _Scope:
    """Re-enterable context manager: each ``with`` opens a fresh scope of the strategy."""

    def __init__(self, dist: Distribution) -> None:
        self._dist = dist
        self._open: list[Any] = []

    def __enter__(self) -> Distribution:
        cm = contextlib.nullcontext() if self._dist.strategy is None else self._dist.strategy.scope()
        cm.__enter__()
        self._open.append(cm)
        return self._dist

    def __exit__(self, *exc: Any) -> Any:
        return self._open.pop().__exit__(*exc)


def _keras_backend() -> str:
    import keras

    return keras.backend.backend()


def strategy_for(kind: str | None, *, devices: Sequence[str] | int | None = None,
                 job_addresses: str | None = None, num_processes: int | None = None,
                 process_id: int | None = None) -> Distribution:
    """The :class:`Distribution` for ``kind`` (``None``/"none", "mirrored", "multiworker", "dataparallel").

    ``devices``: device names (``["/gpu:0", "/gpu:1"]``; JAX: ``["cpu:0", "cpu:1"]``) or a count
    (the first n GPUs, or CPUs when there is no GPU); default all GPUs (all JAX devices).
    ``job_addresses``/``num_processes``/``process_id``: multi-host JAX (else read from
    ``KERAS_DISTRIBUTION_*`` / ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``).
    """
    kind = "none" if kind in (None, "", "none") else str(kind).lower().replace("-", "").replace("_", "")
    if kind not in KINDS:
        raise DistributeError(f"unknown distribution {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "multiworker":
        # Validate before importing anything: TF's own errors for a bad TF_CONFIG are cryptic.
        tf_config = parse_tf_config(os.environ.get("TF_CONFIG"))
    backend = _keras_backend()
    check_backend(kind, backend)
    if kind == "none":
        return Distribution("none", backend)
    if kind == "dataparallel":
        return _data_parallel(devices, job_addresses, num_processes, process_id)
    import tensorflow as tf

    if kind == "mirrored":
        names = _tf_devices(tf, devices)
        strategy = tf.distribute.MirroredStrategy(devices=names)
        n = strategy.num_replicas_in_sync
        if n == 1:
            logger.warning("mirrored: only one device (%s) found; training runs on it alone",
                           names[0] if names else "default")
        return Distribution("mirrored", backend, strategy, n, 1, 0, list(names or []))
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as e:
        raise DistributeError(
            f"could not start MultiWorkerMirroredStrategy ({e}); it must be created before TensorFlow runs "
            "any operation in this process, and TF_CONFIG must name reachable workers") from None
    _reduce_nested(strategy, tf)
    return Distribution("multiworker", backend, strategy, strategy.num_replicas_in_sync,
                        tf_config.num_workers, tf_config.worker_index)


def _reduce_nested(strategy: Any, tf: Any) -> None:
    """Let this strategy's ``reduce`` take a nested structure, as the other strategies' do.

    Two Keras 3 ``fit`` calls break on MultiWorkerMirroredStrategy (keras-team/keras#20585):
    it reduces one (x, y) batch with ``strategy.reduce("MEAN", batch)`` to build the model, but
    this strategy's reduce accepts a single value only ("Attempt to convert a value
    (PerReplica...)"); and it averages each step's scalar logs with ``axis=0``, which a scalar
    does not have ("Invalid reduction dimension 0"). Reducing leaf by leaf (every worker
    reduces the same leaves in the same order), and across replicas only for scalars, is what
    the other strategies do.
    """
    reduce = strategy.reduce

    def one(reduce_op: Any, v: Any, axis: Any) -> Any:
        if axis is not None:
            local = strategy.experimental_local_results(v)[0]
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                axis = None
        return reduce(reduce_op, v, axis=axis)

    def reduce_each(reduce_op: Any, value: Any, axis: Any = None) -> Any:
        return tf.nest.map_structure(lambda v: one(reduce_op, v, axis), value)

    strategy.reduce = reduce_each


def _tf_devices(tf: Any, devices: Sequence[str] | int | None) -> list[str] | None:
    gpus = [f"/gpu:{i}" for i in range(len(tf.config.list_logical_devices("GPU")))]
    if devices is None:
        return gpus or None
    if isinstance(devices, int):
        pool = gpus or [f"/cpu:{i}" for i in range(len(tf.config.list_logical_devices("CPU")))]
        if not 1 <= devices <= len(pool):
            raise DistributeError(f"asked for {devices} devices but this machine has {len(pool)} "
                                  f"({', '.join(pool)})")
        return pool[:devices]
    known = {d.name.lower().replace("/job:localhost/replica:0/task:0/device:", "/")
             for d in tf.config.list_logical_devices()}
    names = [str(d) for d in devices]
    missing = [d for d in names if d.lower() not in known]
    if missing:
        raise DistributeError(f"unknown device(s) {missing}; this machine has {sorted(known)}")
    return names


def _data_parallel(devices: Sequence[str] | int | None, job_addresses: str | None, num_processes: int | None,
                   process_id: int | None) -> Distribution:
    import keras

    env = os.environ
    job_addresses = job_addresses or env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or env.get("JAX_COORDINATOR_ADDRESS")
    nproc = num_processes or env.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or env.get("JAX_NUM_PROCESSES")
    pid = process_id if process_id is not None else env.get("KERAS_DISTRIBUTION_PROCESS_ID", env.get("JAX_PROCESS_ID"))
    if nproc is not None and int(nproc) > 1:
        if job_addresses is None or pid is None:
            raise DistributeError(
                f"multi-host dataparallel with {nproc} processes needs the coordinator address and this "
                "process's id: set KERAS_DISTRIBUTION_JOB_ADDRESSES=host:port (process 0's address) and "
                "KERAS_DISTRIBUTION_PROCESS_ID=0..n-1 on every host")
        import jax

        if not getattr(jax.distributed, "is_initialized", lambda: False)():
            keras.distribution.initialize(job_addresses, int(nproc), int(pid))
    all_devices = keras.distribution.list_devices()
    if devices is None:
        chosen = all_devices
    elif isinstance(devices, int):
        if not 1 <= devices <= len(all_devices):
            raise DistributeError(f"asked for {devices} devices but JAX sees {len(all_devices)} ({all_devices})")
        chosen = all_devices[:devices]
    else:
        chosen = [str(d) for d in devices]
        missing = [d for d in chosen if d not in all_devices]
        if missing:
            raise DistributeError(f"unknown device(s) {missing}; JAX sees {all_devices}")
    import jax

    # Several processes: labelwise gives each process its own part of every global batch
    # (Distribution.local_batches, make_epoch_dataset(process_shard=...)). Keras' own
    # auto-sharding needs a dataset whose batch size tf.data can compute statically, which
    # labelwise's per-epoch and padded pipelines are not ("batch size ... unknown"), and it
    # would decode every image on every process before discarding most of them.
    dp = keras.distribution.DataParallel(devices=chosen, auto_shard_dataset=jax.process_count() == 1)

    return Distribution("dataparallel", "jax", dp, len(chosen), jax.process_count(), jax.process_index(),
                        list(chosen))


# ------------------------------------------------------------------ model and outputs
def sync_batchnorm(model: Any) -> int:
    """Under a multi-replica ``tf.distribute`` strategy, make every BatchNormalization layer of
    ``model`` (nested models included) compute its batch statistics over the global batch.

    Unsynchronized, each replica normalizes with the mean and variance of its own slice of the
    batch: training then differs from one device with the same global batch (relative loss
    differences of ~1e-3 on 2 replicas, where a model without BN agrees to ~1e-7). Synchronized,
    the statistics are all-reduced and the step is the one-device step. Call it inside the
    strategy scope; elsewhere (one device, JAX, whose DataParallel already computes global
    statistics) it changes nothing. Returns how many layers it changed.

    The saved configuration keeps ``synchronized=False``: it only matters while training under
    the strategy, and Keras refuses ``synchronized=True`` when a model is loaded on JAX.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.get_strategy().num_replicas_in_sync < 2:
        return 0
    changed = 0

    def visit(layer: Any) -> None:
        nonlocal changed
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            # instance-level get_config: the artifact stays loadable on every backend
            layer.get_config = lambda layer=layer: {**type(layer).get_config(layer), "synchronized": False}
            changed += 1
        for sub in getattr(layer, "layers", []):
            visit(sub)

    visit(model)
    return changed

