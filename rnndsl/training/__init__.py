"""Training, sampling and evaluation: settings, optimizers, the training loop, checkpoints and
run folders, and data loading (data/)."""
