"""A local stand-in for Jimi's TrackSolid Pro Open API (development and tests only): `manage.py jimi_sandbox`, and the
`jimi_sandbox` pytest fixture. It speaks the documented protocol — signed form POSTs, tokens that expire, error codes —
and serves realistic data for N devices (docs/jimi.md, "The sandbox")."""
