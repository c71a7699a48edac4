"""Bridge: feeds drive cycles, recorded logs and BeamNG.tech into the twin's ``POST /step``."""
