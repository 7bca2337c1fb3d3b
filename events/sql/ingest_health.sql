-- events_ingest_health(since, until): per minute, source and push kind — pushes accepted, refused (per reason,
-- kind '(refused: <reason>)') and raw rows whose parse failed or partly failed. Read by the ops overview page
-- and by Grafana. A function, not a view: the time range prunes events_raw's partitions and uses
-- events_raw_kind_time instead of grouping the whole log.
CREATE OR REPLACE FUNCTION events_ingest_health(p_since timestamptz, p_until timestamptz)
RETURNS TABLE (minute timestamptz, source text, kind text, accepted bigint, refused bigint, parse_failures bigint)
LANGUAGE sql STABLE AS $$
    SELECT minute, source, kind, sum(accepted)::bigint, sum(refused)::bigint, sum(parse_failures)::bigint
      FROM (
        SELECT date_trunc('minute', r.received_at) AS minute,
               coalesce(s.name, r.source_kind)::text AS source,
               r.push_kind::text AS kind,
               count(*) AS accepted,
               0 AS refused,
               count(*) FILTER (WHERE r.status IN ('failed', 'partial')) AS parse_failures
          FROM events_raw r
          LEFT JOIN events_push_sources s ON s.id = r.source_id
         WHERE r.received_at >= p_since AND r.received_at < p_until
         GROUP BY 1, 2, 3
        UNION ALL
        SELECT j.minute, j.source_name::text, '(refused: ' || j.reason || ')', 0, j.count, 0
          FROM events_push_rejections j
         WHERE j.minute >= p_since AND j.minute < p_until
      ) t
     GROUP BY minute, source, kind
     ORDER BY minute, source, kind
$$;
