"""SONAR shared by the ``sonar_text`` / ``sonar_speech`` plugins: options, asset-card loading,
language codes and length-sorted batching (the ``round_trip`` task is core's).

Nothing here imports torch or fairseq2 at module level: plugin listing and recipe validation
import these modules and must stay instant.
"""
