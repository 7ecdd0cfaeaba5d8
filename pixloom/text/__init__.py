"""Text encoders behind one interface: encode(list[str]) -> TextEmbedding (DESIGN.md)."""
