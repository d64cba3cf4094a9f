"""The TF1 Hub module format: specs, instantiation and on-disk io."""
