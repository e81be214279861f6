"""The ``learned`` decoder: a text decoder trained by lcm to invert any encoder's concept space
(``train_decoder``), decoding by beam search or sampling with round-trip reranking."""
