"""vaekit: layer arithmetic for CNNs and variational autoencoders, from the TD-2 sheet."""

__version__ = "0.1.0"
