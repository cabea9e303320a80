"""The language model: loading it (GGUF conversion, 4-bit, dtype), chat formatting, generation, prompts."""
