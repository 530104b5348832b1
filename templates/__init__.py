# Static, reviewed training scripts shipped inside the tuneforge wheel as `tuneforge.templates`.
# They are run as files (python sft.py --config run.json, or uv run), never imported.
