"""TrackSolid Pro Open API: the client (signing, tokens, nodes, error codes) and the polls that feed the log.

docs/jimi.md, "TrackSolid Pro Open API", is the reference for everything here. Responses are written to events_raw
(source kind `jimi-poll`, push kind = the method) and parsed by events/parsers/poll/ like any push.
"""
