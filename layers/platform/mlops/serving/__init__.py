"""Serving: the ONNX model, online scoring, explanations, batch scoring."""
