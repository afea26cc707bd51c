-- 003: admission instead of refusal (stage 5).
--
-- A run marks its sandbox busy (runs in flight, and the latest of their
-- deadlines), so that a create at the project's cap can tell an idle
-- session (which it may evict, least recently used first) from one
-- running code (which it never touches).  Several runs of one session may
-- be in flight at once (in different languages).
ALTER TABLE sandboxes ADD COLUMN busy_until TEXT;
ALTER TABLE sandboxes ADD COLUMN runs INTEGER NOT NULL DEFAULT 0
	CHECK (runs >= 0);

-- The idle sessions evicted to make room, until their next call is told
-- (409 session_evicted) and so starts afresh.  The evicted sandbox's own
-- row is closed with a sandbox_events 'closed' row whose detail says why.
CREATE TABLE session_evictions (
	project_id	TEXT NOT NULL REFERENCES projects(project_id),
	session_id	TEXT NOT NULL,
	sandbox_id	TEXT NOT NULL,
	evicted_at	TEXT NOT NULL,
	PRIMARY KEY (project_id, session_id)
);

-- The least recently used idle session of a project, found by index.
CREATE INDEX sandboxes_project_lru ON sandboxes(project_id, status,
	last_used_at) WHERE session_id IS NOT NULL;
