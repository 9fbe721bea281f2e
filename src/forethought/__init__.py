"""Forethought: a real-time behaviour scorer for proactive customer engagement."""

__version__ = "0.1.0"
