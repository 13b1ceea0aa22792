"""reconciler: government e-mail directories as code."""

__version__ = "0.1.0"
