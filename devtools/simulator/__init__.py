"""The demo fleet simulator: vehicles driving the loaded road graph, reported as Jimi IoT Hub pushes.

- `roads`: the road graph as the simulator reads it (pgRouting over geo_ways; the largest strongly connected part).
- `fleet`: the generator — per tick, the pushes a hub would send for N simulated vehicles (no HTTP).
- `poster`: posts pushes to a gateway as a hub does, retrying 503s and connection errors with back-off.
- `runner`: the simulated clock (`--speedup`) that drives the two.
- `demo`: the demo fleet's identities (IMEIs, plates, cost centres, cities, drivers) and their provisioning.

`manage.py simulate_fleet` and `manage.py demo_fleet` are the commands; `make run` uses both (README, "Demo fleet").
"""
