"""vaekit's version, on the bottom rung so that any layer can name it (`vaekit --version`, the
footer of report.html); `vaekit.__version__` is the same string."""

__version__ = "0.1.0"
