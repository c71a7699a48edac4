"""The pack as an FMI 2.0 co-simulation FMU (`make fmu` → dist/EVBatteryTwin.fmu).

`cosim.PackCosim` is the model side (no FMI import); `slave.EVBatteryTwin` is the pythonfmu
slave around it; `build` makes the FMU.
"""
