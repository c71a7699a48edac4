"""EV battery digital twin service: LiFePO4 pack models behind a stateless POST /step."""

__version__ = "0.1.0"
