"""Terminal dashboard of the twin service (Rich): ``python -m clients.terminal``."""
