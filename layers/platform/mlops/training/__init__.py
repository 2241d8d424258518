"""Training: candidate models, cross-validated selection, evaluation, ONNX export, the decision threshold."""
