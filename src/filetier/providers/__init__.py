"""LLM providers: one adapter per provider behind one Protocol; the upload-once logic."""
