"""Test doubles: a fake BeamNG.tech speaking beamngpy's protocol, and a helper that runs the
real twin service in a subprocess."""
