"""Write the exporter-made models the frontend tests read (needs the `train` extra: torch, onnxscript).

    python tests/compiler/exported/make_models.py

- dynamo_external.onnx (+ .data): torch.onnx.export's default (dynamo) exporter with the weights in an
  external data file, a symbolic batch dimension, and a BatchNorm the exporter folds or keeps.
- legacy_batchnorm.onnx: the legacy TorchScript exporter (dynamo=False), which keeps BatchNormalization
  as a node after the Gemm.
Both come from one small sparse MLP with a BatchNorm, a LeakyReLU, a residual Add and a Tanh.
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


def main():
    model = Residual().eval()
    example = torch.randn(4, 12)
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=["x"], output_names=["y"],
                                dynamic_shapes=({0: batch},), opset_version=18)
    exported = program.model_proto
    for node in exported.graph.node:  # the exporter's notes hold this machine's paths
        del node.metadata_props[:]
    onnx.save(exported, str(HERE / "dynamo_external.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="dynamo_external.onnx.data", size_threshold=0)
    torch.onnx.export(model, (example,), str(HERE / "legacy_batchnorm.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17,
                      do_constant_folding=False)


if __name__ == "__main__":
    main()
