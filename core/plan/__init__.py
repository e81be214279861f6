"""``lcm plan``: what a training recipe needs on GPUs (memory per ZeRO stage, micro-batch, time),
estimated on a machine without them."""
