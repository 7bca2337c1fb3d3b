-- A reload of the road graph keeps what map matching learned (geo/services.py calls this between geo_graph_build()
-- and geo_graph_swap(), in the load's transaction, holding the map-matching projector's lock).
--
-- Segment ids are positions in the loaded file, so a changed extract renumbers them. A segment is the same road
-- when its OSM way and its two end nodes are the same: its observations and its speed bands move to its new id;
-- those of a segment the new graph no longer has (a way redrawn, split elsewhere, deleted) are dropped. Bands are
-- re-added under the new ids from the old bands' sums (two old segments never map to one new one, since the key is
-- the way and both end nodes), so bands and observations stay in step.

CREATE OR REPLACE FUNCTION geo_graph_remap() RETURNS TABLE (kept bigint, dropped bigint)
LANGUAGE plpgsql AS $$
DECLARE
    live text := current_schema();
BEGIN
    DROP TABLE IF EXISTS pg_temp.geo_segment_remap;
    EXECUTE format(
        'CREATE TEMPORARY TABLE geo_segment_remap ON COMMIT DROP AS'
        ' SELECT DISTINCT ON (o.id) o.id AS old_id, n.id AS new_id'
        '   FROM %1$I.geo_ways o'
        '   JOIN %1$I.geo_ways_vertices os ON os.id = o.source'
        '   JOIN %1$I.geo_ways_vertices ot ON ot.id = o.target'
        '   JOIN geo_staging.geo_ways_vertices ns ON ns.osm_node_id = os.osm_node_id'
        '   JOIN geo_staging.geo_ways_vertices nt ON nt.osm_node_id = ot.osm_node_id'
        '   JOIN geo_staging.geo_ways n ON n.osm_id = o.osm_id AND n.source = ns.id AND n.target = nt.id'
        '  WHERE o.id IN (SELECT segment_id FROM %1$I.geo_segment_observations'
        '                 UNION SELECT segment_id FROM %1$I.geo_segment_speed_band)'
        '  ORDER BY o.id, n.id', live);
    CREATE UNIQUE INDEX ON pg_temp.geo_segment_remap (old_id);

    DELETE FROM geo_segment_observations o
     WHERE NOT EXISTS (SELECT 1 FROM pg_temp.geo_segment_remap r WHERE r.old_id = o.segment_id);
    GET DIAGNOSTICS dropped = ROW_COUNT;
    UPDATE geo_segment_observations o SET segment_id = r.new_id
      FROM pg_temp.geo_segment_remap r WHERE r.old_id = o.segment_id AND r.new_id <> r.old_id;
    SELECT count(*) INTO kept FROM geo_segment_observations;

    CREATE TEMPORARY TABLE geo_band_remap ON COMMIT DROP AS
    SELECT r.new_id AS segment_id, b.dow, b.hour, b.speed_sum, b.samples, b.mean_kmh, b.last_observed_at
      FROM geo_segment_speed_band b JOIN pg_temp.geo_segment_remap r ON r.old_id = b.segment_id;
    DELETE FROM geo_segment_speed_band;
    INSERT INTO geo_segment_speed_band (segment_id, dow, hour, speed_sum, samples, mean_kmh, last_observed_at)
    SELECT segment_id, dow, hour, speed_sum, samples, mean_kmh, last_observed_at FROM pg_temp.geo_band_remap;
    DROP TABLE pg_temp.geo_band_remap;
    RETURN NEXT;
END;
$$;
