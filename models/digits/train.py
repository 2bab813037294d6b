"""Train, prune and export the bundled sparse digit generator (and the quality classifier).

Reproduces everything in models/digits/ from scikit-learn's bundled digits data
set (1,797 real 8x8 images, no download): seeded, on the CPU, a few minutes on
two cores. Needs the `train` extra (torch, onnxscript, scikit-learn):

    pip install -e '.[train]'
    python models/digits/train.py

Writes
  models/digits/generator.onnx         the sparse VAE decoder, latent -> 64 pixels in [0, 1]
  models/digits/calib_latents.npy      latents for post-training quantization
  models/digits/real_digits.npz        the real images and labels, so nothing else needs scikit-learn
  models/digits/training.json          the settings and what training measured (time, classifier accuracy)
  runtime/data/digits_classifier.onnx  the classifier behind undense.runtime.quality
and then regenerates the model card (card.py).
"""
import argparse
import json
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LATENT = 16
DECODER_WIDTHS = (LATENT, 128, 256, 64)
SPARSITY = 0.90           # share of zeros in every weight layer of the generator
CALIB_LATENTS = 512
SEED = 0


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)


def mlp(widths, final=None) -> nn.Sequential:
    layers = []
    for i, (n_in, n_out) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp((64, 128, 10))

    def forward(self, x):
        return self.net(x)


class Generator(nn.Module):
    """The exported part: latent -> ReLU MLP -> sigmoid pixels."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(DECODER_WIDTHS[0], DECODER_WIDTHS[1])
        self.fc2 = nn.Linear(DECODER_WIDTHS[1], DECODER_WIDTHS[2])
        self.fc3 = nn.Linear(DECODER_WIDTHS[2], DECODER_WIDTHS[3])

    def forward(self, z):
        h = F.relu(self.fc1(z))
        h = F.relu(self.fc2(h))
        return torch.sigmoid(self.fc3(h))

    def weight_layers(self):
        return [self.fc1, self.fc2, self.fc3]


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = mlp((64, 256, 128, 2 * LATENT))
        self.decoder = Generator()

    def forward(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


def train_classifier(x, y, epochs=60, make=Classifier, weight_decay=1e-4):
    """A classifier made by `make` (the plain MLP here); held-out accuracy on 20% of the images is reported,
    then it is trained on every image."""
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(x))
    split = int(0.8 * len(x))

    def fit(idx):
        model = make()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=weight_decay)
        for _ in range(epochs):
            for batch in torch.from_numpy(rng.permutation(idx)).split(64):
                opt.zero_grad()
                F.cross_entropy(model(x[batch]), y[batch]).backward()
                opt.step()
        return model.eval()

    held_out = order[split:]
    probe = fit(order[:split])
    with torch.no_grad():
        accuracy = (probe(x[held_out]).argmax(1) == y[held_out]).float().mean().item()
    print(f"classifier: held-out accuracy {accuracy:.3f}")
    return fit(order), accuracy


def cubic_sparsity(step, start, end, final):
    """Gradual pruning schedule of Zhu & Gupta (2017): s_t = s_f (1 - (1 - t)^3)."""
    t = min(max((step - start) / (end - start), 0.0), 1.0)
    return final * (1.0 - (1.0 - t) ** 3)


def prune_to(layer: nn.Linear, sparsity: float) -> torch.Tensor:
    """Zero the smallest-magnitude weights of one layer; returns its keep-mask."""
    w = layer.weight.data
    n_zero = int(round(sparsity * w.numel()))
    mask = torch.ones_like(w)
    if n_zero:
        mask.view(-1)[w.abs().view(-1).argsort()[:n_zero]] = 0
    w.mul_(mask)
    return mask


def train_vae(x, dense_epochs, prune_epochs, tune_epochs, beta):
    vae = VAE()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    layers = vae.decoder.weight_layers()
    masks = [torch.ones_like(layer.weight) for layer in layers]
    total = dense_epochs + prune_epochs + tune_epochs
    for epoch in range(total):
        sparsity = cubic_sparsity(epoch, dense_epochs, dense_epochs + prune_epochs, SPARSITY)
        if dense_epochs <= epoch <= dense_epochs + prune_epochs:
            masks = [prune_to(layer, sparsity) for layer in layers]
        running = 0.0
        for batch in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            recon, mu, logvar = vae(x[batch])
            rec = F.binary_cross_entropy(recon, x[batch], reduction="sum") / len(batch)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(batch)
            loss = rec + beta * kl
            loss.backward()
            opt.step()
            with torch.no_grad():
                for layer, mask in zip(layers, masks, strict=True):
                    layer.weight.mul_(mask)
            running += loss.item() * len(batch)
        if epoch % 100 == 0 or epoch == total - 1:
            print(f"vae epoch {epoch:4d}: loss {running / len(x):7.2f}, decoder sparsity {sparsity:.3f}")
    return vae.eval()


def export_onnx(model, example, path, input_name, output_name):
    program = torch.onnx.export(
        model, (example,), dynamo=True, external_data=False, opset_version=18,
        input_names=[input_name], output_names=[output_name],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    model = program.model_proto  # a fresh proto on every access: take it once
    strip_exporter_metadata(model)
    name_nodes_after_layers(model.graph)
    onnx.save(model, str(path))


def strip_exporter_metadata(model) -> None:
    """Drop the exporter's per-value notes (Python stack traces with this machine's paths).

    They would make the file differ from one checkout to the next while the model is the same.
    """
    graph = model.graph
    for item in [*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        del item.metadata_props[:]


def name_nodes_after_layers(graph) -> None:
    """Rename exporter node names (node_linear_1, ...) after the torch layers they come from.

    A Gemm takes the name of its weight's module (fc2.weight -> fc2) and the
    activation it feeds is called after it (fc2_relu), so the names that later
    reach the Verilog read like the model.
    """
    producer = {}
    for node in graph.node:
        weights = [name for name in node.input if name.endswith(".weight")]
        if weights:
            node.name = weights[0].removesuffix(".weight").replace(".", "_")
        elif node.input and node.input[0] in producer:
            node.name = f"{producer[node.input[0]]}_{node.op_type.lower()}"
        producer.update(dict.fromkeys(node.output, node.name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dense-epochs", type=int, default=400)
    parser.add_argument("--prune-epochs", type=int, default=600)
    parser.add_argument("--tune-epochs", type=int, default=400)
    parser.add_argument("--beta", type=float, default=1.0)
    args = parser.parse_args(argv)

    set_seed(SEED)
    digits = load_digits()
    images = digits.data.astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    np.savez_compressed(HERE / "real_digits.npz", images=images, labels=labels)
    x = torch.from_numpy(images.astype(np.float32) / 16.0)
    y = torch.from_numpy(labels.astype(np.int64))

    started = time.monotonic()
    classifier, held_out_accuracy = train_classifier(x, y)
    classifier = nn.Sequential(classifier, nn.Softmax(dim=1)).eval()
    export_onnx(classifier, x[:2], REPO / "runtime" / "data" / "digits_classifier.onnx", "image", "probs")

    generator = train_vae(x, args.dense_epochs, args.prune_epochs, args.tune_epochs, args.beta).decoder
    export_onnx(generator, torch.zeros(2, LATENT), HERE / "generator.onnx", "latent", "pixels")
    rng = np.random.default_rng(SEED + 1)
    np.save(HERE / "calib_latents.npy", rng.standard_normal((CALIB_LATENTS, LATENT)).astype(np.float32))
    record = {**vars(args), "sparsity": SPARSITY, "seed": SEED, "torch": torch.__version__,
              "classifier_held_out_accuracy": round(held_out_accuracy, 4),
              "train_seconds": round(time.monotonic() - started, 1), "threads": torch.get_num_threads()}
    (HERE / "training.json").write_text(json.dumps(record, indent=2) + "\n")

    subprocess.run([sys.executable, str(HERE / "card.py")], check=True)


if __name__ == "__main__":
    main()
