"""Sources of samples: each yields :class:`bridge.samples.Sample` objects, nothing else.

- ``cycle``: standard drive cycles through the road-load model (optional charging stops)
- ``replay``: recorded BeamNG JSON, CSV and JSONL logs
- ``beamng``: a live BeamNG.tech simulation (beamngpy, see ``beamng_adapter``)
- ``explore``: the sensor explorer (saves what the sensors report; not a sample source)
"""
