"""``labelwise explain MODEL.keras IMAGES --out DIR``: where did the model look for each label?

Writes, per image and label, an overlay PNG (the image beside the image under the label's
Grad-CAM heatmap; the title gives the label's probability and decision) and DIR/index.html
showing them all. IMAGES is a folder of images, a table (CSV) with an image path column, or
one image file; for a case model, a folder of .npy stacks (then, per case and label, the
slices that drove it with each slice's own score, and their heatmaps). DIR/predictions.csv holds
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
    p.add_argument("--labels", default=None, metavar="A,B", help="labels to explain (default: every label the model outputs)")
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="feature-map layer (default: the last convolutional feature map)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs and index.html")
    p.add_argument("--batch-size", type=int, default=16, help="images per backward pass (default 16)")
    p.add_argument("--top-slices", type=int, default=3, metavar="N",
                   help="case models (.npy stacks): the N slices that drove each label (default 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..explain import explain_images, write_explanations

    source = args.images
    if args.images.endswith(".npy") or (Path(args.images).is_dir() and any(Path(args.images).glob("*.npy"))):
        from ..explain.cases import explain_cases_to

        n, k, index = explain_cases_to(args.model, args.images, args.out, args.labels, layer=args.layer,
                                       top_k=args.top_slices)
        print(f"labelwise explain: {n} case(s) x {k} label(s), top {args.top_slices} slices each -> {index} "
              f"(probabilities and decisions: {index.parent / 'predictions.csv'})")
        return 0
    if Path(source).is_file() and Path(source).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
        source = [source]
    result = explain_images(args.model, source, args.labels, args.layer, batch_size=args.batch_size)
    index = write_explanations(result, args.out)
    if result.threshold_note:
        print(f"labelwise explain: note: {result.threshold_note}")
    print(f"labelwise explain: {len(result.ids)} image(s) x {len(result.labels)} label(s) at layer "
          f"{result.layer!r} -> {index} (probabilities and decisions: {index.parent / 'predictions.csv'})")
    return 0
