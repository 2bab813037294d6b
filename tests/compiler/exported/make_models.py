"""Write the exporter-made models the frontend tests read (needs the `train` extra: torch, onnxscript).

    python tests/compiler/exported/make_models.py

- dynamo_external.onnx (+ .data): torch.onnx.export's default (dynamo) exporter with the weights in an
  external data file, a symbolic batch dimension, and a BatchNorm the exporter folds or keeps.
- legacy_batchnorm.onnx: the legacy TorchScript exporter (dynamo=False), which keeps BatchNormalization
  as a node after the Gemm.
Both come from one small sparse MLP with a BatchNorm, a LeakyReLU, a residual Add and a Tanh.
- conv_dynamo_external.onnx (+ .data), conv_legacy.onnx: a small sparse convolutional decoder (Linear into a
  feature map, ConvTranspose, BatchNorm2d, LeakyReLU, nearest Upsample, Conv, a residual conv block, Sigmoid)
  by both exporters; the legacy one writes the Shape/Gather/Concat arithmetic of a symbolic batch for the
  unflatten, and keeps BatchNormalization as nodes.
"""
from pathlib import Path

import onnx
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(12, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 32)
        self.out = nn.Linear(32, 10)
        for layer in (self.fc1, self.fc2, self.out):
            with torch.no_grad():
                layer.weight.mul_(torch.rand_like(layer.weight) < 0.3)
        with torch.no_grad():  # statistics a trained model would have, so that folding them matters
            self.bn1.running_mean.uniform_(-0.5, 0.5)
            self.bn1.running_var.uniform_(0.5, 2.0)
            self.bn1.weight.uniform_(0.5, 1.5)
            self.bn1.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        h = nn.functional.leaky_relu(self.bn1(self.fc1(x)), 0.1)
        h = h + torch.relu(self.fc2(h))
        return torch.tanh(self.out(h))


class ConvDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.fc = nn.Linear(10, 8 * 4 * 4)
        self.up1 = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.block = nn.Conv2d(6, 6, 3, padding=1)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.out = nn.Conv2d(6, 1, 3, padding=1)
        for layer in (self.fc, self.up1, self.block, self.out):
            with torch.no_grad():
                layer.weight.mul_(torch.rand_like(layer.weight) < 0.4)
        with torch.no_grad():
            self.bn1.running_mean.uniform_(-0.5, 0.5)
            self.bn1.running_var.uniform_(0.5, 2.0)
            self.bn1.weight.uniform_(0.5, 1.5)
            self.bn1.bias.uniform_(-0.2, 0.2)

    def forward(self, z):
        h = torch.relu(self.fc(z)).view(z.size(0), 8, 4, 4)
        h = nn.functional.leaky_relu(self.bn1(self.up1(h)), 0.2)
        h = h + torch.relu(self.block(h))
        return torch.sigmoid(self.out(self.up2(h)))


def export_both(model, example, dynamo_name, legacy_name):
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=["x"], output_names=["y"],
                                dynamic_shapes=({0: batch},), opset_version=18)
    exported = program.model_proto
    for node in exported.graph.node:  # the exporter's notes hold this machine's paths
        del node.metadata_props[:]
    (HERE / f"{dynamo_name}.data").unlink(missing_ok=True)  # onnx.save refuses to overwrite it
    onnx.save(exported, str(HERE / dynamo_name), save_as_external_data=True,
              all_tensors_to_one_file=True, location=f"{dynamo_name}.data", size_threshold=0)
    torch.onnx.export(model, (example,), str(HERE / legacy_name), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17,
                      do_constant_folding=False)


def main():
    export_both(Residual().eval(), torch.randn(4, 12), "dynamo_external.onnx", "legacy_batchnorm.onnx")
    export_both(ConvDecoder().eval(), torch.randn(4, 10), "conv_dynamo_external.onnx", "conv_legacy.onnx")


if __name__ == "__main__":
    main()
