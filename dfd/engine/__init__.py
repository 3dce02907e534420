"""Training and evaluation machinery: optimizer, loop, inference, checkpoints."""
