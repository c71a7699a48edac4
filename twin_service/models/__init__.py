"""Pure battery and vehicle models: numpy only, no web imports, no side effects."""
