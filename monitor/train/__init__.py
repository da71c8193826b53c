"""Training and evaluation: data sets, augmentation, metrics, the training loop, model cards."""
