"""Yunzhou (云舟): an application PaaS."""

__version__ = "0.1.0"
