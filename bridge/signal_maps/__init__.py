"""Signal maps of vehicle logs (YAML; see bridge/sources/signal_map.py). A package so that
the maps are installed with the bridge as package data."""
