"""Test doubles: a fake BeamNG.tech speaking beamngpy's protocol, and a pack for sources that
read back the SOC."""
