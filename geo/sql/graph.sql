-- The road graph's load, in three steps that run in one transaction (geo/services.py, docs/architecture.md "Roads"):
--
--   geo_graph_stage()  empty copies of geo_ways and geo_ways_vertices in schema geo_staging (columns, defaults,
--                      checks, identity; no index yet), and the session's temporary geo_ways_input the loader
--                      COPYs the segments into.
--   geo_graph_build()  geo_staging.geo_ways from the input: geodesic length, costs in seconds, end points; then every
--                      index and index-backed constraint of the live tables, under the live names (index names are
--                      unique per schema, so the staging schema can hold the same ones), and ANALYZE.
--   geo_graph_swap()   ACCESS EXCLUSIVE on both live tables, DROP them, ALTER TABLE … SET SCHEMA the staged ones into
--                      their place (indexes, constraints and the identity sequence move with them, names unchanged).
--
-- Readers never see half a graph: until the commit they read the old tables; a reader waiting on the swap's lock
-- looks the names up again once it has it, and reads the new tables, committed whole. The caller bounds the swap's
-- wait with lock_timeout, so a long reader cannot make every new reader queue behind the swap.

CREATE SCHEMA IF NOT EXISTS geo_staging;

CREATE OR REPLACE FUNCTION geo_graph_stage() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    live text := current_schema();
BEGIN
    DROP TABLE IF EXISTS geo_staging.geo_ways, geo_staging.geo_ways_vertices;
    DROP TABLE IF EXISTS pg_temp.geo_ways_input;
    EXECUTE format('CREATE TABLE geo_staging.geo_ways (LIKE %I.geo_ways INCLUDING ALL EXCLUDING INDEXES)', live);
    EXECUTE format(
        'CREATE TABLE geo_staging.geo_ways_vertices (LIKE %I.geo_ways_vertices INCLUDING ALL EXCLUDING INDEXES)', live
    );
    CREATE TEMPORARY TABLE geo_ways_input (
        id bigint NOT NULL,
        osm_id bigint NOT NULL,
        source bigint NOT NULL,
        target bigint NOT NULL,
        geom geometry(LineString, 4326) NOT NULL,
        highway varchar(32) NOT NULL,
        maxspeed_kmh double precision,
        speed_kmh double precision NOT NULL,
        oneway boolean NOT NULL,
        name text NOT NULL
    ) ON COMMIT DROP;
END;
$$;

-- geo_ways.routable: the segment's two vertices lie in the graph's largest strongly connected part, where every
-- vertex reaches every other. Fragments (a parking aisle drawn without its entrance, a one-way dead end of a clipped
-- extract) stay in the graph for map matching and tiles, but a route neither starts nor ends on them: an end snapped
-- there would have no route at all.
CREATE OR REPLACE FUNCTION geo_graph_mark_routable(p_schema text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'WITH parts AS (SELECT node, component FROM pgr_strongComponents(%L)),'
        '     main AS (SELECT component FROM parts GROUP BY component ORDER BY count(*) DESC, component LIMIT 1),'
        '     inside AS (SELECT node FROM parts JOIN main USING (component))'
        ' UPDATE %I.geo_ways w SET routable = (w.source IN (SELECT node FROM inside)'
        '                                      AND w.target IN (SELECT node FROM inside))',
        format('SELECT id, source, target, cost, reverse_cost FROM %I.geo_ways', p_schema), p_schema
    );
END;
$$;

CREATE OR REPLACE FUNCTION geo_graph_build() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    live text := current_schema();
    tbl text;
    idx record;
BEGIN
    INSERT INTO geo_staging.geo_ways
        (id, osm_id, source, target, geom, length_m, cost, reverse_cost, highway, maxspeed_kmh, speed_kmh, oneway,
         name, x1, y1, x2, y2)
    SELECT i.id, i.osm_id, i.source, i.target, i.geom, m.length_m, m.length_m * 3.6 / i.speed_kmh,
           CASE WHEN i.oneway THEN -1 ELSE m.length_m * 3.6 / i.speed_kmh END,
           i.highway, i.maxspeed_kmh, i.speed_kmh, i.oneway, i.name,
           ST_X(ST_StartPoint(i.geom)), ST_Y(ST_StartPoint(i.geom)), ST_X(ST_EndPoint(i.geom)), ST_Y(ST_EndPoint(i.geom))
    FROM pg_temp.geo_ways_input i, LATERAL (SELECT ST_Length(i.geom::geography) AS length_m) m
    ORDER BY i.id;
    DROP TABLE pg_temp.geo_ways_input;
    PERFORM geo_graph_mark_routable('geo_staging');

    FOREACH tbl IN ARRAY ARRAY['geo_ways', 'geo_ways_vertices'] LOOP
        FOR idx IN
            SELECT i.indexrelid, c.oid AS conoid, c.conname
            FROM pg_index i
            LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                      AND c.contype IN ('p', 'u', 'x')
            WHERE i.indrelid = format('%I.%I', live, tbl)::regclass
            ORDER BY i.indexrelid
        LOOP
            IF idx.conoid IS NOT NULL THEN
                EXECUTE format('ALTER TABLE geo_staging.%I ADD CONSTRAINT %I %s',
                               tbl, idx.conname, pg_get_constraintdef(idx.conoid));
            ELSE
                EXECUTE regexp_replace(pg_get_indexdef(idx.indexrelid),
                                       '^(CREATE (UNIQUE )?INDEX \S+ ON )(ONLY )?\S+',
                                       '\1' || format('geo_staging.%I', tbl));
            END IF;
        END LOOP;
        -- The identity sequence continues after the loaded ids (a row Django inserts gets the next one).
        EXECUTE format(
            'SELECT setval(pg_get_serial_sequence(%L, ''id''), coalesce((SELECT max(id) FROM geo_staging.%I), 0) + 1,'
            ' false)', 'geo_staging.' || tbl, tbl
        );
    END LOOP;
    ANALYZE geo_staging.geo_ways;
    ANALYZE geo_staging.geo_ways_vertices;
END;
$$;

CREATE OR REPLACE FUNCTION geo_graph_swap() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    live text := current_schema();
BEGIN
    EXECUTE format('LOCK TABLE %I.geo_ways, %I.geo_ways_vertices IN ACCESS EXCLUSIVE MODE', live, live);
    EXECUTE format('DROP TABLE %I.geo_ways, %I.geo_ways_vertices', live, live);
    EXECUTE format('ALTER TABLE geo_staging.geo_ways SET SCHEMA %I', live);
    EXECUTE format('ALTER TABLE geo_staging.geo_ways_vertices SET SCHEMA %I', live);
END;
$$;
