"""lcm's terminal output: progress, results, notes, and where third-party chatter goes."""
from lcm.ui.terminal import Terminal, current, progress, using

__all__ = ["Terminal", "current", "progress", "using"]
