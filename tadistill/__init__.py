"""tadistill: distil a teacher LLM into a small student with a teaching assistant in the loop."""

__version__ = "0.1.0"
