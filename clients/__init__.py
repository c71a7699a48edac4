"""Clients of the EV battery twin: typed Python client, terminal and web dashboards."""
