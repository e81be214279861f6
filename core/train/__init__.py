"""Training through DeepSpeed: one CPU to many nodes."""
