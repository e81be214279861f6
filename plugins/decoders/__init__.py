"""Built-in decoders."""
