"""Training and evaluation of the model: manifests and batches, the objective and its losses,
scores, and the loop behind `streamre train` and `streamre eval`."""
