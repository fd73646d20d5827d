"""benchkit: measure how well local LLMs write code."""

__version__ = "0.1.0"
