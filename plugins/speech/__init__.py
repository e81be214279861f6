"""Speech recognition for cascade encoders (speech → transcript → a text encoder's space)."""
