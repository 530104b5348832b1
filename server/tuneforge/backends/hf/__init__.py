"""The `hf` backend: the same template and config on Hugging Face Jobs, through `huggingface_hub`."""

from .backend import HfJobsBackend


def create_backend() -> HfJobsBackend:
    return HfJobsBackend()


__all__ = ["HfJobsBackend", "create_backend"]
