"""civharm: tools that keep the civilian-harm data package trustworthy."""

__version__ = "0.1.0"
