"""``labelwise explain MODEL.keras IMAGES --out DIR``: where did the model look for each label?

Writes, per image and label, an overlay PNG (the image beside the image under the label's
Grad-CAM heatmap; the title gives the label's probability and decision) and DIR/index.html
showing them all. IMAGES is a folder of images, a table (CSV) with an image path column, or
one image file; for a case model, the cases predict reads (a folder of .npy stacks or of case
folders of slice images; then, per case and label, the slices that drove it with each slice's own
score, and their heatmaps). DIR/predictions.csv holds
the probabilities and decisions shown, in labelwise predict's format (the artifact's calibration
and rule: the numbers predict and serve give). The maps are of each
label's logit at the model's last convolutional feature map unless --layer names another
(a wrong name lists the candidates).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("explain", help="Grad-CAM overlays per image and label, with an index.html",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model.keras written by labelwise train / demo")
    p.add_argument("images", help="a folder of images, a table (CSV) with an image path column, or one image")
    p.add_argument("--id-column", "--column", dest="column", default=None, metavar="C",
                   help="IMAGES is a table: its image path column (default: the id column train reads, "
                        "'Image Index'/image/id/filename/path/...), "
                        "as in labelwise predict")
    p.add_argument("--labels", default=None, metavar="A,B", help="labels to explain (default: every label the model outputs)")
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="feature-map layer (default: the last convolutional feature map)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs and index.html")
    p.add_argument("--batch-size", type=int, default=16, help="images per backward pass (default 16)")
    p.add_argument("--top-slices", type=int, default=3, metavar="N",
                   help="case models (.npy stacks): the N slices that drove each label (default 3)")
    p.add_argument("--split", metavar="NAME", help="IMAGES is a table: explain only its rows of this split (e.g. test)")
    p.add_argument("--splits", metavar="FILE",
                   help="with --split: the split file labelwise split --out wrote, joined to the table by id")
    p.add_argument("--split-column", metavar="C", default=None,
                   help="with --split: the table's split column (default: split)")
    p.set_defaults(func=run)


TABLE_SUFFIXES = (".csv", ".tsv", ".tab")


def check_source(source: str) -> None:
    """Refuse, before the model is loaded, a file explain cannot read: it takes a folder, an image
    (PNG, JPEG, BMP, GIF), a table (.csv/.tsv/.tab) of image paths, or a .npy stack. Any other
    file (``note.txt``) would otherwise be read as a table and fail with a message about tables."""
    from pathlib import Path

    from ..data.sources import IMAGE_SUFFIXES
    from ..errors import InputError

    path = Path(source)
    if not path.is_file():
        return  # a folder, a missing path: the readers word those
    suffix = path.suffix.lower()
    if suffix in (*IMAGE_SUFFIXES, *TABLE_SUFFIXES, ".npy"):
        return
    kind = f"a {suffix} file" if suffix else "a file without a suffix"
    raise InputError(f"{source}: explain cannot read {kind}; it takes a folder of images, one image "
                     f"({', '.join(IMAGE_SUFFIXES)}), a table ({', '.join(TABLE_SUFFIXES)}) with an image path "
                     "column, or for a case model .npy stacks (a folder of them or one .npy file)"
                     + ("; if it is a table, name it .csv" if suffix == ".txt" else ""))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..explain import explain_images, write_explanations

    from ..training.artifact import load
    from ..training.predict import model_inputs

    check_source(args.images)  # before loading the model: a wrong file should cost nothing
    source = args.images
    stacks = args.images.endswith(".npy") or (Path(args.images).is_dir() and any(Path(args.images).glob("*.npy")))
    loaded = load(args.model, policy=True)
    none = loaded[1].none if not args.labels else None
    none_note = (f"labelwise explain: note: {none!r} gets no heatmap: it is derived (true when no other label is) "
                 "and has no logit of its own; its probability and decision are in predictions.csv") if none else None
    # a case model reads cases (a folder of case folders of slice images, too), as predict does
    if stacks or model_inputs(loaded[0]).kind == "case":
        from ..explain.cases import explain_cases_to

        n, k, index = explain_cases_to(loaded, args.images, args.out, args.labels, layer=args.layer,
                                       top_k=args.top_slices)
        print(f"labelwise explain: {n} case(s) x {k} label(s), top {args.top_slices} slices each -> {index} "
              f"(probabilities and decisions: {index.parent / 'predictions.csv'})")
        if none_note:
            print(none_note)
        return 0
    if Path(source).is_file() and Path(source).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
        source = [source]
    elif args.split or args.splits or args.split_column:
        source = _split_rows(args)
    result = explain_images(loaded, source, args.labels, args.layer, batch_size=args.batch_size,
                            column=getattr(args, "column", None))
    index = write_explanations(result, args.out)
    if result.threshold_note:
        print(f"labelwise explain: note: {result.threshold_note}")
    print(f"labelwise explain: {len(result.ids)} image(s) x {len(result.labels)} label(s) at layer "
          f"{result.layer!r} -> {index} (probabilities and decisions: {index.parent / 'predictions.csv'})")
    if none_note:
        print(none_note)
    return 0


def _split_rows(args: argparse.Namespace) -> list[str]:
    """The image paths of the table ``args.images`` whose split is ``args.split``: from the split
    file (``--splits``, joined by id) or the table's split column; names as every command reads them."""
    from ..errors import InputError
    from ..labels.split import split_name, splits_for
    from ..training.predict import read_inputs

    if not args.split:
        raise InputError("--splits / --split-column go with --split NAME (e.g. --split test)")
    ids, paths = read_inputs(args.images, column=getattr(args, "column", None))
    if args.splits:
        names = splits_for(ids, args.splits, source=args.images)
    else:
        from pathlib import Path

        from ..labels.csvread import SPLIT_COLUMN_NAMES, _data_rows, _present, read_csv

        tsv = Path(args.images).suffix.lower() in (".tsv", ".tab")
        frame, _ = _data_rows(read_csv(args.images, sep="\t" if tsv else ","), Path(args.images), first_line=2)
        col = args.split_column or next(iter(_present(frame.columns, SPLIT_COLUMN_NAMES)), "split")
        if col not in frame.columns:
            raise InputError(f"{args.images}: no split column {col!r}; the columns are {list(frame.columns)} "
                             "(name it with --split-column, or give the split file with --splits)")
        names = frame[col].map(split_name).to_numpy()
    keep = [p for p, n in zip(paths, names) if n == split_name(args.split)]
    if not keep:
        raise InputError(f"{args.images}: no row is in split {args.split!r}")
    return list(dict.fromkeys(keep))
