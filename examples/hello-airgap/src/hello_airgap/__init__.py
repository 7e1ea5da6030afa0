"""Example application for airgap.uv."""

__version__ = "0.1.0"
