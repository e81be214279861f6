"""Diffusion for concept vectors: the options (``config``, torch-free) and the DDIM scheduler."""
