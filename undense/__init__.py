"""undense: sparse generative models from ONNX to FPGA accelerators."""
