-- Fix-quality helpers (state/projectors/history.py). The plausibility check needs many distances per fix and no
-- geodesic precision: a haversine on the mean sphere costs ~0.4 µs, a geography ST_Distance ~7 µs. Trip
-- distances, which must be exact, use ST_Distance on the geography (state/projectors/trips.py).

CREATE OR REPLACE FUNCTION state_haversine_m(lat1 float8, lng1 float8, lat2 float8, lng2 float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 2 * 6371008.8 * asin(sqrt(
        power(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lng2 - lng1) / 2), 2)))
$$;

-- Speed implied by moving from one fix to another; two fixes in the same second count as one second apart.
CREATE OR REPLACE FUNCTION state_implied_kmh(lat1 float8, lng1 float8, t1 timestamptz,
                                             lat2 float8, lng2 float8, t2 timestamptz) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT state_haversine_m(lat1, lng1, lat2, lng2) / greatest(abs(date_part('epoch', t2 - t1)), 1) * 3.6
$$;
