"""POST /forecast: usage profiles from requests or observed history, run the forecast model."""
