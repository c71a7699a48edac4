"""POST /calibrate: pack parameters fitted to a log's measured voltages (fit.py), and their
wire form (wire.py)."""
