"""The typed answers that flow between layers: the dataset report, the plan, the GGUF report.

Leaf modules: pydantic models only, importing nothing else of tuneforge, so every layer (and the MCP
server at start-up) can import them cheaply.
"""
