"""The three tiers: memory (bytes), disk cache (files), primary store (objects)."""
