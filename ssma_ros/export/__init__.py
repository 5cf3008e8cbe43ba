"""Export of trained models: ONNX files, model bundles and TensorRT engines."""
