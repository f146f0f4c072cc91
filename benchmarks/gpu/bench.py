"""GPU training/predict throughput: labelwise vs plain Keras ``model.fit`` vs a hand-written PyTorch loop.

Run by ``run.sh`` (see README.md beside it), one process per Keras backend (Keras fixes its
backend per process), each appending rows to ``gpu_results.json``; ``--table`` prints the table.

Legs, each at ``(model, batch, precision)`` for DenseNet-121 and ResNet-50, batch 64/128,
float32/bfloat16, images 224x224x3, 14 sigmoid outputs (NIH ChestX-ray14's findings):

* ``labelwise``: the model, loss, optimizer, precision and jit setting ``labelwise train`` builds
  (``labelwise.training.phases.build_and_compile`` under ``precision_policy``), fed by what
  ``labelwise train`` feeds: the in-memory source or the Python pipeline on files;
* ``keras``: ``keras.applications`` of the same backbone, sigmoid head, Adam + binary
  cross-entropy, ``model.fit`` under the same dtype policy;
* ``torch``: torchvision's model, Adam, BCE-with-logits, ``torch.autocast`` (bfloat16) and
  ``channels_last``, a plain loop (only in the torch process, skipped without torchvision).

Inputs: ``tensors`` -- one batch already on the device, fed again every step (no input cost);
``files`` -- the NIH PNGs decoded and resized by the Python pipeline (labelwise and keras legs;
the torch leg reads them through a DataLoader with the same decode), the files repeated to fill
the steps. Timing: ``warmup`` steps first (compilation), then ``steps`` timed steps; images/s =
timed images / wall seconds, synchronised at the end. Predict legs time ``predict`` likewise.

``--smoke``: tiny images (32x32), tiny batches, 2 steps, CPU, to prove the script runs here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name: (keras.applications constructor, torchvision constructor); small_cnn (labelwise's own
# tiny CNN, no twins: its keras leg fits the same labelwise-built model with a plain compile) is for --smoke
MODELS = {"densenet121": ("DenseNet121", "densenet121"), "resnet50": ("ResNet50", "resnet50"),
          "small_cnn": (None, None)}
N_OUT = 14


def _configs(args):
    models = args.models.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    precisions = args.precisions.split(",")
    # the goals first: DenseNet-121 at the first batch, both precisions; then the rest
    out = [(m, b, p) for m in models for b in batches for p in precisions]
    return sorted(out, key=lambda c: (c[0] != models[0], batches.index(c[1]), precisions.index(c[2])))


class Deadline:
    """Legs are skipped (and recorded as skipped) once the time budget is spent."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def _record(path: Path, row: dict) -> None:
    rows = json.loads(path.read_text()) if path.exists() else []
    rows.append(row)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, path)
    shown = f"{row['images_per_s']:.1f} img/s" if row.get("images_per_s") else row.get("note", "")
    print(f"  {row['backend']:6s} {row['leg']:9s} {row['phase']:7s} {row['input']:7s} {row['model']:11s} "
          f"b{row['batch']:<4d} {row['precision']:14s} {shown}", flush=True)


def _files(args) -> list[str]:
    folder = Path(args.data)
    files = sorted(str(p) for p in folder.glob("*.png"))
    if not files:
        raise SystemExit(f"bench: no PNG files in {folder} (run.sh copies the NIH PNGs there)")
    return files


# ------------------------------------------------------------------ Keras legs (labelwise, keras)
def keras_legs(args, out: Path, deadline: Deadline) -> None:
    import keras
    import numpy as np

    from labelwise import LabelSchema
    from labelwise.data import pypipeline
    from labelwise.training import TrainConfig
    from labelwise.training.phases import build_and_compile
    from labelwise.training.runtime import has_gpu, precision_policy

    backend = keras.backend.backend()
    schema = LabelSchema(independent=[f"finding_{i}" for i in range(N_OUT)])
    size = args.size
    files = _files(args)
    device = "gpu" if has_gpu() else "cpu"
    print(f"bench: Keras {keras.__version__} on {backend} ({device})", flush=True)

    def on_device(x):
        if backend == "jax":
            import jax

            return jax.device_put(x)
        if backend == "torch":
            from keras.src.backend.torch.core import convert_to_tensor

            return convert_to_tensor(x)
        return x

    class Fixed(keras.utils.PyDataset):
        """The same device-resident batch every step: no input cost at all."""

        def __init__(self, x, y, steps):
            super().__init__()
            self.x, self.y, self.steps = x, y, steps

        def __len__(self):
            return self.steps

        def __getitem__(self, i):
            return (self.x, self.y) if self.y is not None else (self.x,)

    rng = np.random.default_rng(0)

    def build(leg, model_name, precision):
        if leg == "labelwise":
            config = TrainConfig(backbone=model_name, weights=None, image_size=(size, size), channels=3,
                                 precision=precision, jit_compile="auto", epochs=1, batch_size=1)
            return build_and_compile(config, schema)
        if MODELS[model_name][0] is None:
            from labelwise.blocks.models import build_model

            model = build_model(schema, model_name, input_shape=(size, size, 3), weights=None)
        else:
            app = getattr(keras.applications, MODELS[model_name][0])
            model = app(weights=None, input_shape=(size, size, 3), classes=N_OUT, classifier_activation="sigmoid")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        return model

    def timed(fn, steps, batch):
        t0 = time.perf_counter()
        fn()
        return steps * batch / (time.perf_counter() - t0)

    for model_name, batch, prec in _configs(args):
        precision = "float32" if prec == "float32" else "mixed_bfloat16"
        for leg in ("labelwise", "keras"):
            base = dict(backend=backend, leg=leg, model=model_name, batch=batch, precision=precision,
                        size=size, device=device)
            if deadline.left() < args.leg_seconds:
                for phase, inp in (("train", "tensors"), ("train", "files"), ("predict", "tensors")):
                    _record(out, {**base, "phase": phase, "input": inp, "note": "skipped: time budget spent"})
                continue
            where = ("train", "tensors")
            try:
                with precision_policy(precision):
                    keras.utils.set_random_seed(0)
                    model = build(leg, model_name, precision)
                    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
                    y = (rng.uniform(size=(batch, N_OUT)) < 0.2).astype("float32")
                    xd, yd = on_device(x), on_device(y)
                    # warm-up (compilation) then timed steps; fit returns after the last step is done
                    model.fit(Fixed(xd, yd, args.warmup), epochs=1, verbose=0, shuffle=False)
                    ips = timed(lambda: model.fit(Fixed(xd, yd, args.steps), epochs=1, verbose=0, shuffle=False),
                                args.steps, batch)
                    _record(out, {**base, "phase": "train", "input": "tensors", "images_per_s": ips})
                    if deadline.left() > args.leg_seconds / 2:
                        where = ("train", "files")
                        n = args.steps * batch
                        ds = pypipeline.make_epoch_dataset((files * (n // len(files) + 1))[:n],
                                                           y=np.zeros((n, N_OUT), "float32"), image_size=(size, size),
                                                           channels=3, batch_size=batch, shuffle=True, check=False,
                                                           workers=args.workers)
                        ips = timed(lambda: model.fit(ds, epochs=1, verbose=0, shuffle=False), args.steps, batch)
                        ds.close()
                        _record(out, {**base, "phase": "train", "input": "files", "images_per_s": ips})
                    where = ("predict", "tensors")
                    model.predict(Fixed(xd, None, args.warmup), verbose=0)
                    ips = timed(lambda: model.predict(Fixed(xd, None, args.steps), verbose=0), args.steps, batch)
                    _record(out, {**base, "phase": "predict", "input": "tensors", "images_per_s": ips})
            except Exception as e:  # a leg that fails is recorded, the others still run
                _record(out, {**base, "phase": where[0], "input": where[1], "note": f"failed: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}"})
            keras.backend.clear_session()


# ------------------------------------------------------------------ the hand-written PyTorch loop
def torch_legs(args, out: Path, deadline: Deadline) -> None:
    import numpy as np
    import torch

    base0 = dict(backend="torch", leg="torch", size=args.size)
    try:
        import torchvision
    except ImportError:
        torchvision = None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    size = args.size
    files = _files(args)

    def decode(path):  # the same decode and resize as labelwise's Python pipeline
        from labelwise.data.pypipeline import decode_file, prepare

        return prepare(decode_file(path, 3), (size, size), 3)

    for model_name, batch, prec in _configs(args):
        precision = "float32" if prec == "float32" else "mixed_bfloat16"
        base = {**base0, "model": model_name, "batch": batch, "precision": precision, "device": device}
        if MODELS[model_name][1] is not None and torchvision is None:
            _record(out, {**base, "phase": "train", "input": "tensors", "note": "skipped: torchvision not installed"})
            continue
        if deadline.left() < args.leg_seconds / 3:
            _record(out, {**base, "phase": "train", "input": "tensors", "note": "skipped: time budget spent"})
            continue
        torch.manual_seed(0)
        if MODELS[model_name][1] is None:  # --smoke: a tiny CNN exercises the loop without torchvision
            nn = torch.nn
            model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(8, N_OUT)).to(device)
        else:
            model = getattr(torchvision.models, MODELS[model_name][1])(num_classes=N_OUT).to(device)
        model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        lossf = torch.nn.BCEWithLogitsLoss()
        amp = dict(device_type=device, dtype=torch.bfloat16, enabled=precision != "float32")
        x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
        y = (torch.rand(batch, N_OUT, device=device) < 0.2).float()

        def step(xb, yb):
            with torch.autocast(**amp):
                loss = lossf(model(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def sync():
            if device == "cuda":
                torch.cuda.synchronize()

        def timed(run, steps):
            sync()
            t0 = time.perf_counter()
            run(steps)
            sync()
            return steps * batch / (time.perf_counter() - t0)

        model.train()
        for _ in range(args.warmup):
            step(x, y)
        ips = timed(lambda s: [step(x, y) for _ in range(s)], args.steps)
        _record(out, {**base, "phase": "train", "input": "tensors", "images_per_s": ips})
        if deadline.left() > args.leg_seconds / 3:
            n = args.steps * batch
            paths = (files * (n // len(files) + 1))[:n]

            class Files(torch.utils.data.Dataset):
                def __len__(self):
                    return n

                def __getitem__(self, i):
                    return torch.from_numpy(decode(paths[i]).transpose(2, 0, 1).copy())

            loader = torch.utils.data.DataLoader(Files(), batch_size=batch, num_workers=args.workers,
                                                 pin_memory=device == "cuda", persistent_workers=args.workers > 0)
            next(iter(loader))  # start the worker processes before timing (persistent: reused below)

            def run_files(_):
                for xb in loader:
                    xb = xb.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                    step(xb, y[: len(xb)])

            ips = timed(run_files, args.steps)
            _record(out, {**base, "phase": "train", "input": "files", "images_per_s": ips})
        model.eval()
        with torch.no_grad(), torch.autocast(**amp):
            for _ in range(args.warmup):
                model(x)
            ips = timed(lambda s: [model(x) for _ in range(s)], args.steps)
        _record(out, {**base, "phase": "predict", "input": "tensors", "images_per_s": ips})
        del model, opt
        if device == "cuda":
            torch.cuda.empty_cache()


# ------------------------------------------------------------------ the table
def table(path: Path) -> str:
    """A Markdown table of the rows, with each leg's ratio to the hand-written PyTorch loop and,
    for bfloat16, to the same leg in float32."""
    rows = json.loads(path.read_text()) if path.exists() else []
    ok = {(r["backend"], r["leg"], r["phase"], r["input"], r["model"], r["batch"], r["precision"]): r["images_per_s"]
          for r in rows if r.get("images_per_s")}
    lines = ["| backend | leg | phase | input | model | batch | precision | images/s | vs torch loop | bf16 / f32 |",
             "|---|---|---|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        key = (r["backend"], r["leg"], r["phase"], r["input"], r["model"], r["batch"], r["precision"])
        ips = r.get("images_per_s")
        ref = ok.get(("torch", "torch", r["phase"], r["input"], r["model"], r["batch"], r["precision"]))
        f32 = ok.get((*key[:6], "float32")) if r["precision"] != "float32" else None
        lines.append(f"| {r['backend']} | {r['leg']} | {r['phase']} | {r['input']} | {r['model']} | {r['batch']} | "
                     f"{r['precision']} | {f'{ips:.1f}' if ips else r.get('note', '')} | "
                     f"{f'{ips / ref:.2f}' if ips and ref else ''} | {f'{ips / f32:.2f}' if ips and f32 else ''} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("keras", "torch", "table"), required=True)
    p.add_argument("--out", default=str(HERE / "gpu_results.json"))
    p.add_argument("--data", default=str(HERE / ".data" / "nih"))
    p.add_argument("--models", default="densenet121,resnet50")
    p.add_argument("--batches", default="64,128")
    p.add_argument("--precisions", default="bfloat16,float32")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 2))
    p.add_argument("--budget", type=float, default=150.0, help="seconds for this process's legs")
    p.add_argument("--leg-seconds", type=float, default=30.0, help="a leg starts only with this much budget left")
    p.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU: proves the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.warmup, args.steps, args.batches, args.workers = 32, 1, 2, "4", 2
        args.leg_seconds = 0.0
    out = Path(args.out)
    if args.part == "table":
        text = table(out)
        out.with_suffix(".md").write_text(text + "\n")
        print(text)
        return 0
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    deadline = Deadline(args.budget)
    (torch_legs if args.part == "torch" else keras_legs)(args, out, deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
