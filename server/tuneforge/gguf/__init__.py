"""GGUF export: llama.cpp's own converter and quantizer at one pinned version, every file verified.

The modules: `source` (what to export), `quants` (the GGUF types), `toolchain` (the pinned llama.cpp),
`workers` (the subprocesses: merge, reference logits, convert, quantize, verify), `export` (the local
pipeline), `modelfile` (Ollama Modelfile and model card), `hub` (pushing), `cloud` (the export as a
Hugging Face job). The pass/fail rules live in `tuneforge.templates._shared.gguf_checks`, which the
cloud job's script ships with. Faces call `tuneforge.actions.export` (export_gguf, submit_export).
"""
