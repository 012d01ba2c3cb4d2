-- The audit page filters by author and by action, newest first, and offers each author and each
-- action it holds as a choice. These indexes serve both without reading the whole trail.
CREATE INDEX audit_events_by_author ON audit_events (actor_name, created_at DESC, id DESC);
CREATE INDEX audit_events_by_action ON audit_events (action, created_at DESC, id DESC);
