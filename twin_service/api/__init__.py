"""Thin HTTP and WebSocket routers: validate, call the service layer, publish."""
