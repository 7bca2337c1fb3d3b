"""The dashboards' read models: one selector per view contract (live, history, dispatch, overview) over the
state tables, the ninja router that serves them under /api/views/, and its schemas. Reads only; the projectors
are the writers."""
