"""Packyard: a self-hosted Python package repository and publishing platform."""

__version__ = "0.1.0"
