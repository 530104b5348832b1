"""tuneforge: fine-tune open LLMs from a sentence.

The package root stays import-light: it never imports torch, transformers, trl, peft or datasets.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
