"""labelwise.training.distribute: strategies on logical CPU devices, checked against one-device training.

Each distributed run happens in a subprocess (logical devices and collective ops must be set up
before the framework starts, and must not leak into other tests): MirroredStrategy over 2
logical CPUs, MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1, and JAX
DataParallel over 2 host devices. Each run trains a small Keras model with plain SGD (no
optimizer state), saves weights under the strategy, loads them into a freshly built model
under the strategy and trains on (checkpoint/resume), and is compared with an uninterrupted
one-device run on the same data in the same order: epoch losses within 1e-5 relative, final
weights within 1e-5, and every replica's copy of every variable equal.
"""

from __future__ import annotations

import json
import re
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelwise.training.distribute import (
    BatchPlan, Distribution, DistributeError, check_backend, parse_tf_config, scale_learning_rate,
)
from labelwise.errors import LabelwiseError

from conftest import NIH_IMAGES

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 150  # seconds per subprocess; the 2 shared cores make TF start-up slow


def _finish(procs: list) -> list[str]:
    """Each subprocess's output, waiting at most TIMEOUT for each; fails on a nonzero exit."""
    outputs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, f"process failed (exit {p.returncode}):\n{text[-4000:]}"
    return outputs


def _kill(procs: list) -> None:
    """Stop whatever is still running (a timeout or a failed start leaves no stray workers)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
RTOL = 1e-5

# One script for every kind: train E1 epochs, save, reload into a new model, train E2 more,
# save; then (on the chief) the same E1+E2 epochs on one device, uninterrupted.
WORKER = textwrap.dedent(r'''
    import json, os, sys
    spec = json.loads(sys.argv[1])
    if spec.get("logical_cpus"):
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * spec["logical_cpus"])
    from labelwise.training.distribute import strategy_for
    dist = strategy_for(spec["kind"], devices=spec.get("devices"))  # multiworker: before any TF op
    import numpy as np
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = (rng.random((96, 3)) < 0.3).astype("float32")
    GLOBAL_BATCH, E1, E2 = 16, 2, 1

    def build(d, seed):
        with d.scope():
            keras.utils.set_random_seed(seed)
            m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                                  keras.layers.Dense(3, activation="sigmoid")])
            plan = d.plan(GLOBAL_BATCH, 0.05, reference_batch=8, log=False)
            m.compile(optimizer=keras.optimizers.SGD(plan.learning_rate), loss="binary_crossentropy")
        return m, plan

    def fit(d, m, epochs):
        with d.scope():
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf
                ds = d.distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH),
                                          policy="data")
                h = m.fit(ds, epochs=epochs, verbose=0)
            else:
                h = m.fit(x, y, batch_size=GLOBAL_BATCH, epochs=epochs, shuffle=False, verbose=0)
        return [float(v) for v in h.history["loss"]]

    def replica_spread(d, m):
        """Largest difference between two replicas' copies of any variable, and copies per variable."""
        worst, copies = 0.0, set()
        for v in m.weights:
            if d.kind in ("mirrored", "multiworker"):
                vals = [np.asarray(t) for t in d.strategy.experimental_local_results(v.value)]
            elif d.kind == "dataparallel":
                vals = [np.asarray(s.data) for s in v.value.addressable_shards]
            else:
                vals = [np.asarray(v.value)]
            copies.add(len(vals))
            worst = max([worst] + [float(np.max(np.abs(a - vals[0]))) for a in vals])
        return worst, sorted(copies)

    out = spec["out"]
    m, plan = build(dist, seed=1)
    losses = fit(dist, m, E1)
    ckpt = dist.worker_path(os.path.join(out, "ckpt.weights.h5"))
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    m.save_weights(ckpt)
    m2, _ = build(dist, seed=2)  # different init: only loading makes it continue
    m2.load_weights(ckpt)
    losses += fit(dist, m2, E2)
    spread, copies = replica_spread(dist, m2)
    result = {"kind": dist.kind, "replicas": dist.num_replicas, "workers": dist.num_workers,
              "worker": dist.worker_index, "losses": losses, "spread": spread, "copies": copies,
              "plan": plan.describe(), "weights": [np.asarray(w).ravel().tolist() for w in m2.get_weights()]}
    import tensorflow as tf  # tf.data on every backend
    # a last batch of 5 cannot be split over 2 devices as it is; even_batches pads it
    uneven = tf.data.Dataset.from_tensor_slices(x[:21]).batch(16)
    with dist.scope():
        p = m2.predict(dist.even_batches(uneven), verbose=0)
    result["uneven_rows"] = int(p.shape[0])
    result["uneven_diff"] = float(np.max(np.abs(p[:21] - m2.predict(x[:21], verbose=0))))
    if dist.is_chief:
        from labelwise.training.distribute import Distribution
        one = Distribution("none", keras.backend.backend())
        r, _ = build(one, seed=1)
        result["reference_losses"] = fit(one, r, E1 + E2)
        result["reference_weights"] = [np.asarray(w).ravel().tolist() for w in r.get_weights()]
    if spec.get("shards"):  # which examples does this worker read from TFRecord shards?
        from labelwise.data.shards import read_shards

        ds = read_shards(spec["shards"], image_size=8, channels=1, batch_size=4, with_ids=True)
        ids = []
        for batch in dist.strategy.experimental_distribute_dataset(ds):
            for t in dist.strategy.experimental_local_results(batch[2]):
                ids += [i.decode() for i in t.numpy()]
        result["shard_ids"] = ids
    with open(os.path.join(out, f"result-{dist.worker_index}.json"), "w") as f:
        json.dump(result, f)
''')


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="",
               TF_ENABLE_ONEDNN_OPTS="0", OMP_NUM_THREADS="1")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run_workers(tmp_path: Path, specs: list[dict], envs: list[dict]) -> list[dict]:
    """Start one process per spec, wait with a timeout, always kill what is left; return results."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = []
    try:
        for spec, env in zip(specs, envs):
            spec = {**spec, "out": str(tmp_path)}
            procs.append(subprocess.Popen([sys.executable, str(script), json.dumps(spec)], env=env, cwd=tmp_path,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        _finish(procs)
    finally:
        _kill(procs)
    return [json.loads((tmp_path / f"result-{i}.json").read_text()) for i in range(len(specs))]


def _check_against_reference(result: dict, replicas: int) -> None:
    assert result["replicas"] == replicas
    assert result["copies"] == [replicas] or result["kind"] == "multiworker"
    assert result["spread"] == 0.0, f"replicas disagree by {result['spread']}"
    assert len(result["losses"]) == 3
    np.testing.assert_allclose(result["losses"], result["reference_losses"], rtol=RTOL)
    for w, ref in zip(result["weights"], result["reference_weights"]):
        np.testing.assert_allclose(w, ref, rtol=RTOL, atol=1e-6)
    # 21 rows in batches of 16: padded to 22 on 2 JAX devices, as they are elsewhere
    assert result["uneven_rows"] == (22 if result["kind"] == "dataparallel" else 21)
    assert result["uneven_diff"] < 1e-6
    # the loss must actually move, or equality above would prove nothing
    assert result["losses"][-1] < result["losses"][0] - 1e-3
    assert "global batch 16 = " in result["plan"] and "0.05 -> 0.1 (linear scaling" in result["plan"]


@pytest.mark.slow
def test_mirrored_two_logical_cpus_matches_one_device(tmp_path):
    (result,) = _run_workers(tmp_path, [{"kind": "mirrored", "devices": 2, "logical_cpus": 2}], [_env()])
    _check_against_reference(result, replicas=2)
    assert "8 per replica x 2" in result["plan"]


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_multiworker_two_processes_agree_and_match_one_device(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    envs = [_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
            for i in range(2)]
    spec = {"kind": "multiworker"}
    table = None
    if (NIH_IMAGES / "labels.csv").exists():  # shards of the 24 NIH images, 10 per file: 3 files
        from labelwise.data.shards import write_shards
        from labelwise.labels.tables import read_table

        table = read_table(NIH_IMAGES / "labels.csv", images=NIH_IMAGES / "images")
        write_shards(table, None, tmp_path / "shards", shard_size=10, progress=False)
        spec["shards"] = str(tmp_path / "shards")
    r0, r1 = _run_workers(tmp_path, [spec] * 2, envs)
    assert (r0["worker"], r1["worker"], r0["workers"]) == (0, 1, 2)
    _check_against_reference(r0, replicas=2)
    assert r0["losses"] == pytest.approx(r1["losses"], rel=RTOL)
    for a, b in zip(r0["weights"], r1["weights"]):  # the two workers' final weights
        np.testing.assert_allclose(a, b, rtol=0, atol=0)
    if table is not None:
        # FILE auto-sharding: worker 0 reads shard files 0 and 2, worker 1 file 1; nothing twice
        ids = [str(i) for i in table.ids]
        assert r0["shard_ids"] == ids[:10] + ids[20:] and r1["shard_ids"] == ids[10:20]
    # non-chief workers save to their own folder, so the chief's checkpoint is never clobbered
    assert (tmp_path / "ckpt.weights.h5").exists() and (tmp_path / ".worker-1" / "ckpt.weights.h5").exists()


@pytest.mark.slow
def test_jax_dataparallel_two_host_devices_matches_one_device(tmp_path):
    pytest.importorskip("jax")
    env = _env(KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    (result,) = _run_workers(tmp_path, [{"kind": "dataparallel"}], [env])
    _check_against_reference(result, replicas=2)


# ------------------------------------------------------------------ pure parts (no framework)
def test_backend_mismatch_says_what_to_use():
    with pytest.raises(DistributeError, match="use --distribute dataparallel"):
        check_backend("mirrored", "jax")
    with pytest.raises(DistributeError, match="use --distribute mirrored"):
        check_backend("dataparallel", "tensorflow")
    with pytest.raises(LabelwiseError, match="choose one of none, mirrored, multiworker, dataparallel"):
        check_backend("horovod", "tensorflow")
    check_backend("multiworker", "tensorflow")
    check_backend("dataparallel", "jax")


@pytest.mark.parametrize("text, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{cluster: 1}", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
    ('{"cluster": {"worker": ["a:1"]}}', "no 'task'"),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', r"cluster.worker must be a non-empty list"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', r"cluster.worker\[0\] = 'a'"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "twice"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "parameter servers"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', r"task.index is 2.*use 0..1"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "task.type is 'chief'"),
])
def test_bad_tf_config_names_the_field(text, message):
    with pytest.raises(DistributeError, match=message):
        parse_tf_config(text)


def test_tf_config_worker_numbering_with_chief():
    text = json.dumps({"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}})
    cfg = parse_tf_config(text)
    assert (cfg.num_workers, cfg.worker_index, cfg.is_chief) == (3, 2, False)
    chief = parse_tf_config(text.replace('"type": "worker", "index": 1', '"type": "chief", "index": 0'))
    assert (chief.worker_index, chief.is_chief) == (0, True)


def test_batch_split_and_learning_rate_scaling(tmp_path):
    d = Distribution("mirrored", "tensorflow", None, num_replicas=4)
    assert d.global_batch_size(32) == 128 and d.per_replica_batch(128) == 32
    with pytest.raises(DistributeError, match="cannot be split evenly over 4 replicas.*e.g. 100 or 104"):
        d.per_replica_batch(102)
    plan = d.plan(128, 0.1, reference_batch=32)
    assert isinstance(plan, BatchPlan) and plan.learning_rate == pytest.approx(0.4)
    assert "global batch 128 = 32 per replica x 4" in plan.describe()
    assert scale_learning_rate(0.1, 128, 32, "sqrt") == pytest.approx(0.2)
    assert scale_learning_rate(0.1, 128, None) == 0.1
    with pytest.raises(DistributeError, match="unknown learning-rate scaling rule"):
        scale_learning_rate(0.1, 128, 32, "cubic")
    worker = Distribution("multiworker", "tensorflow", None, 2, 2, 1)
    assert worker.worker_path(tmp_path / "m.keras") == tmp_path / ".worker-1" / "m.keras"
    assert Distribution("none", "tensorflow").worker_path(tmp_path / "m.keras") == tmp_path / "m.keras"


_TRAIN_SCRIPT = textwrap.dedent('''
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import dataclasses
    from labelwise.training import TrainConfig, train
    config = TrainConfig.from_toml(sys.argv[1])
    config = dataclasses.replace(config, epochs=int(sys.argv[2]), resume=sys.argv[3] == "1", verbose=2,
                                 distribute="mirrored", devices=2,  # what --distribute mirrored --devices 2 sets
                                 lr_reference_batch=16)
    train(config)
''')


def test_devices_needs_a_device_strategy():
    from labelwise.errors import InputError
    from labelwise.training import TrainConfig

    with pytest.raises(InputError, match="needs distribute = 'mirrored' or 'dataparallel'"):
        TrainConfig(devices=2)
    with pytest.raises(InputError, match="needs distribute"):
        TrainConfig(devices=2, distribute="multiworker")
    assert TrainConfig(devices=2, distribute="mirrored").devices == 2


@pytest.mark.slow
def test_train_mirrored_two_logical_cpus_logs_plan_and_resumes(tmp_path):
    from test_train import make_digit_table

    config = make_digit_table(tmp_path)
    script = tmp_path / "run_train.py"
    script.write_text(_TRAIN_SCRIPT)
    outs = []
    for epochs, resume in ((1, "0"), (2, "1")):
        proc = subprocess.run([sys.executable, str(script), str(config), str(epochs), resume], env=_env(),
                              cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs.append(proc.stdout + proc.stderr)
    assert re.search(r"2 replica\(s\) on 1 worker\(s\); global batch \d+ = \d+ per replica x 2", outs[0]), outs[0]
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log["epoch"].tolist() == [1, 2]  # the second run resumed after epoch 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["learning_rate"] == 0.003  # the base rate, as given
    plan = saved["distribution"]
    assert (plan["kind"], plan["num_replicas"], plan["num_workers"]) == ("mirrored", 2, 1)
    assert (plan["global_batch"], plan["per_replica_batch"], plan["reference_batch"]) == (32, 16, 16)
    assert plan["base_learning_rate"] == 0.003 and plan["learning_rate"] == pytest.approx(0.006)
    assert "learning rate 0.003 -> 0.006 (linear scaling, reference batch 16)" in outs[0]


_BN_SCRIPT = textwrap.dedent(r'''
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import keras
    from labelwise import LabelSchema
    from labelwise.training.distribute import Distribution, strategy_for, sync_batchnorm
    from labelwise.training import TrainConfig, build_and_compile

    rng = np.random.default_rng(0)
    x = rng.normal(128, 60, size=(64, 8, 8, 1)).astype("float32")
    y = (rng.random((64, 3)) < 0.4).astype("float32")
    schema = LabelSchema(independent=("a", "b", "c"))
    config = TrainConfig(backbone="small_cnn", image_size=(8, 8), channels=1, bn_momentum=0.9, loss="bce",
                         learning_rate=0.01, batch_size=16)

    def run(dist, sync):
        with dist.scope():
            keras.utils.set_random_seed(1)
            if sync:
                m = build_and_compile(config, schema)  # calls sync_batchnorm inside the scope
            else:  # the old behaviour: each replica normalizes with its own half of the batch
                import labelwise.training.distribute as d
                real, d.sync_batchnorm = d.sync_batchnorm, lambda model: 0
                try:
                    m = build_and_compile(config, schema)
                finally:
                    d.sync_batchnorm = real
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
            h = m.fit(ds, epochs=2, verbose=0, shuffle=False)
        bns = [l for l in m._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
        return {"losses": [float(v) for v in h.history["loss"]],
                "weights": [np.asarray(w).ravel().tolist() for w in m.get_weights()],
                "n_bn": len(bns), "synchronized": [bool(l.synchronized) for l in bns],
                "saved_synchronized": [bool(l.get_config()["synchronized"]) for l in bns]}

    one = Distribution("none", "tensorflow")
    mirrored = strategy_for("mirrored", devices=2)
    result = {"one": run(one, True), "mirrored": run(mirrored, True), "unsynced": run(mirrored, False)}
    with open(sys.argv[1], "w") as f:
        json.dump(result, f)
''')


@pytest.mark.slow
def test_mirrored_batchnorm_is_synchronized_and_matches_one_device(tmp_path):
    """small_cnn (BatchNormalization) under MirroredStrategy on 2 logical CPUs vs one device.

    With per-replica BN statistics the two differ at ~1e-3 relative; labelwise synchronizes BN
    under a multi-replica strategy, which makes them agree to float summation order."""
    script = tmp_path / "bn.py"
    script.write_text(_BN_SCRIPT)
    out = tmp_path / "bn.json"
    proc = subprocess.run([sys.executable, str(script), str(out)], env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    one, mir, unsynced = r["one"], r["mirrored"], r["unsynced"]
    assert one["n_bn"] > 0 and mir["synchronized"] == [True] * mir["n_bn"]
    assert one["synchronized"] == [False] * one["n_bn"]  # one device: nothing to synchronize
    assert mir["saved_synchronized"] == [False] * mir["n_bn"]  # the artifact loads on JAX too
    assert one["losses"][-1] < one["losses"][0] - 1e-3  # it trains, so agreement means something
    np.testing.assert_allclose(mir["losses"], one["losses"], rtol=RTOL)
    # weights: Adam divides by sqrt(v), so a parameter whose gradients are ~0 can move ~1e-5 on
    # summation-order noise alone (seen: 1.2e-5 on one of 73728); the rest agree far closer
    for w, ref in zip(mir["weights"], one["weights"]):
        np.testing.assert_allclose(w, ref, rtol=1e-4, atol=5e-5)
    # the check can fail: unsynchronized BN is visibly off
    assert max(abs(a - b) / b for a, b in zip(unsynced["losses"], one["losses"])) > 10 * RTOL


@pytest.mark.slow
def test_process_shard_slices_match_padded_global_batches():
    """make_epoch_dataset(process_shard=...): the processes' batches, joined in process order (as
    Keras joins them), are the global batches of one process, the last one padded as
    even_batches pads it; each process reads only its own rows."""
    from labelwise.data.pipeline import make_epoch_dataset

    x = np.arange(41 * 2 * 2, dtype=np.float32).reshape(41, 2, 2, 1)  # 41 rows: 16 + 16 + 9
    y = np.arange(41, dtype=np.float32)[:, None]
    kw = dict(image_size=(2, 2), channels=1, batch_size=16, shuffle=True, seed=3, epochs=(1, 3))
    whole = Distribution("dataparallel", "jax", num_replicas=2).even_batches(make_epoch_dataset(x, y, **kw))
    parts = [list(make_epoch_dataset(x, y, process_shard=(2, i, 2), **kw).as_numpy_iterator()) for i in range(2)]
    glob = list(whole.as_numpy_iterator())
    assert len(parts[0]) == len(parts[1]) == len(glob) == 6  # 3 batches per epoch, 2 epochs
    for (x0, y0), (x1, y1), (xg, yg) in zip(*parts, glob):
        np.testing.assert_array_equal(np.concatenate([y0, y1]), yg)
        np.testing.assert_array_equal(np.concatenate([x0, x1]), xg)
    assert [len(b[1]) for b in parts[0][:3]] == [8, 8, 5]  # last batch 9 -> 10 rows, 5 per process
    with pytest.raises(LabelwiseError, match="cannot be split over 4 processes"):
        make_epoch_dataset(x, y, process_shard=(4, 0, 4), **{**kw, "batch_size": 18})


@pytest.mark.slow
def test_train_jax_dataparallel_two_processes_matches_one_process(tmp_path):
    """`labelwise train --distribute dataparallel` on 2 JAX processes (jax.distributed on
    127.0.0.1, gloo CPU collectives, one CPU device each) logs the same epochs as one process
    with 2 host devices: same global batches (41 train images, batch 16: the last batch padded
    to 10), so losses agree to 1e-5 relative (measured: bit-identical) and the val AUC exactly."""
    pytest.importorskip("jax")
    from test_train import make_digit_table

    config = make_digit_table(tmp_path, n={"train": 41, "val": 16, "test": 8})
    cmd = [sys.executable, "-m", "labelwise", "train", str(config), "--distribute", "dataparallel", "--epochs", "2",
           "--batch-size", "16", "--lr-schedule", "constant", "--loss-weights", "none", "--verbose", "0", "--out-dir"]
    jax_env = dict(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    (port,) = _free_ports(1)
    procs = []
    try:
        procs = [subprocess.Popen(cmd + [str(tmp_path / "multi")], cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=_env(
                                      **jax_env, JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
                                      KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                                      KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID=str(i)))
                 for i in range(2)]
        _finish(procs)
    finally:
        _kill(procs)
    single = subprocess.run(cmd + [str(tmp_path / "single")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=TIMEOUT, env=_env(**jax_env, XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert single.returncode == 0, single.stdout + single.stderr
    multi, ref = pd.read_csv(tmp_path / "multi" / "log.csv"), pd.read_csv(tmp_path / "single" / "log.csv")
    worker1 = pd.read_csv(tmp_path / ".worker-1" / "multi" / "log.csv")  # process 1 writes beside, not over
    assert multi["epoch"].tolist() == ref["epoch"].tolist() == [1, 2]
    for col in ("loss", "val_loss"):
        np.testing.assert_allclose(multi[col], ref[col], rtol=RTOL)
        np.testing.assert_allclose(worker1[col], multi[col], rtol=0)  # both processes saw the same steps
    np.testing.assert_array_equal(multi["val_macro_auc"], ref["val_macro_auc"])
    assert multi["loss"].iloc[1] < multi["loss"].iloc[0] - 1e-3  # training moved: equality means something
    plan = json.loads((tmp_path / "multi" / "config.json").read_text())["distribution"]
    assert (plan["num_replicas"], plan["num_workers"], plan["global_batch"]) == (2, 2, 16)
    assert (tmp_path / "multi" / "model.keras").exists() and (tmp_path / "multi" / "report").is_dir()
