"""Measure the bundled digit generator and write its model card (README.md) and samples.png.

Everything in the card is computed here from the committed files, with
onnxruntime and undense's quality metric; nothing needs torch:

    python models/digits/card.py
"""
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from undense.runtime.float_model import sample_float
from undense.runtime.images import save_grid
from undense.runtime.quality import quality_score

HERE = Path(__file__).resolve().parent
SAMPLES = 1000
SEED = 2024


def weight_layers(model: onnx.ModelProto) -> list[tuple[str, str, np.ndarray]]:
    """(node name, op type, weight matrix) for every Gemm/MatMul whose weight is an initializer."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [(node.name, node.op_type, inits[node.input[1]]) for node in model.graph.node
            if node.op_type in ("Gemm", "MatMul") and node.input[1] in inits]


def main():
    model_path = HERE / "generator.onnx"
    model = onnx.load(str(model_path))
    real = np.load(HERE / "real_digits.npz")
    real_score = quality_score(real["images"] / 16.0)
    images = sample_float(model_path, SAMPLES, SEED)
    float_score = quality_score(images)
    save_grid(images[:64], HERE / "samples.png")

    rows, total_weights, total_nnz = [], 0, 0
    for name, op, w in weight_layers(model):
        nnz = int(np.count_nonzero(w))
        total_weights += w.size
        total_nnz += nnz
        rows.append(f"| {name} | {op} | {w.shape[0]} x {w.shape[1]} | {w.size:,} | {nnz:,} "
                    f"| {1 - nnz / w.size:.1%} |")
    ratio = float_score.score / real_score.score
    share_header = " | ".join(str(d) for d in range(len(float_score.class_shares)))
    share_row = " | ".join(f"{s:.1%}" for s in float_score.class_shares)
    training = json.loads((HERE / "training.json").read_text())
    latent = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    card = TEMPLATE.format(
        latent=latent, layers="\n".join(rows), total_weights=f"{total_weights:,}",
        total_nnz=f"{total_nnz:,}", total_sparsity=f"{1 - total_nnz / total_weights:.1%}",
        samples=SAMPLES, sample_seed=SEED, real_score=f"{real_score.score:.2f}",
        float_score=f"{float_score.score:.2f}", ratio=f"{ratio:.2f}", share_header=share_header,
        share_rule=" | ".join("---" for _ in float_score.class_shares), share_row=share_row,
        opset=model.opset_import[0].version, **training,
        calib=len(np.load(HERE / "calib_latents.npy")),
    )
    (HERE / "README.md").write_text(card)
    print(f"float model score {float_score.score:.2f} vs real {real_score.score:.2f} (ratio {ratio:.2f})")


TEMPLATE = """\
# Model card: the bundled sparse digit generator

`generator.onnx` turns a latent vector z ~ N(0, I) of {latent} numbers into an 8x8
greyscale digit (64 pixels in [0, 1], ink = 1). It is the decoder of a
variational autoencoder trained on scikit-learn's bundled digits data set
(1,797 images from the UCI "Optical Recognition of Handwritten Digits" set,
CC BY 4.0), pruned to at least 85% zero weights in every layer.

This file is written by `card.py`, which measures every figure below from the
committed files; `train.py` reproduces the files themselves.

## Architecture

Float ONNX, opset {opset}, batch dimension symbolic (`batch`):

    latent[{latent}] -> Gemm -> Relu -> Gemm -> Relu -> Gemm -> Sigmoid -> pixels[64]

| layer (ONNX node) | op | weight (out x in) | weights | nonzeros | zeros |
| --- | --- | --- | --- | --- | --- |
{layers}
| total | | | {total_weights} | {total_nnz} | {total_sparsity} |

The zeros are real zeros in the exported initializers; biases are kept dense.

## Training and pruning

`train.py` (seed {seed}, CPU, torch {torch}, {threads} threads; the last run took
{train_seconds} s, from `training.json`):

1. A VAE with a 64-256-128 ReLU encoder and the decoder above is trained on all
   1,797 images (pixels / 16, binary cross-entropy + {beta} x KL, Adam, batch
   64) for {dense_epochs} epochs.
2. Gradual magnitude pruning (Zhu & Gupta 2017, cubic schedule) takes every
   decoder weight layer from dense to {sparsity:.0%} zeros over {prune_epochs}
   epochs while training continues; the masks then stay fixed for
   {tune_epochs} epochs of fine-tuning.
3. The decoder is exported with `torch.onnx.export` (dynamo exporter); its
   nodes are renamed after the layers (`fc1`, `fc1_relu`, ...), so the names
   that reach the Verilog read like the model. {calib} calibration latents
   drawn from N(0, I) are in `calib_latents.npy`.

Why a VAE: while building it, a GAN of the same size, trained and pruned the
same way, scored lower and left some digits out; adversarial fine-tuning of this decoder, other
KL weights (0.5 to 2) and a two-stage VAE did not lift the score either. The
VAE's reconstructions score as high as the real images; what is lost is in
sampling from N(0, I), whose mass falls partly between the digits. (Those
trials are not kept as scripts; `train.py` is what made the files here.)

## Quality

The quality metric (`undense.runtime.quality`) is an Inception-Score-style
number, exp(E[KL(p(y|x) || p(y))]), 10 at best, from a small MLP digit
classifier (64-128-10) trained on the same data and shipped as ONNX
(`runtime/data/digits_classifier.onnx`); trained on 80% of the images it
classifies the other 20% with accuracy {classifier_held_out_accuracy:.1%}, and
the shipped one is then trained on all of them.

| images | score |
| --- | --- |
| the 1,797 real images | {real_score} |
| {samples:,} samples of the float model (latent seed {sample_seed}) | {float_score} |
| ratio (required >= 0.7, aimed at 0.85) | {ratio} |

Share of the float model's samples the classifier puts in each class:

| {share_header} |
| {share_rule} |
| {share_row} |

![64 samples of the float model](samples.png)
"""


if __name__ == "__main__":
    main()
