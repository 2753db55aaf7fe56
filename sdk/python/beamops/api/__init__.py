"""High-level SDK calls, one module per service; reach them through ``beamops.Client``."""
