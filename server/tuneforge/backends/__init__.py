"""Backends run a JobSpec somewhere: `local` (a detached process here) or `hf` (Hugging Face Jobs)."""

from .base import BACKENDS, Backend, get_backend

__all__ = ["BACKENDS", "Backend", "get_backend"]
