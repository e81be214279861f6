"""The concept pipeline: text or speech in, concepts continued, sentences out, each traced.

``ConceptPipeline`` (``pipeline.py``) is built once from a checkpoint, an encoder and a decoder;
``generate``, ``summarize`` and ``lcm serve`` are input/output shells around it. How candidate
sentences are chosen, ordered and traced to the source lives in ``selector.py`` alone.
"""
