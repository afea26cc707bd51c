-- 001_init: projects, keys, the audit log, sandboxes and executions.
--
-- Times are ISO 8601 UTC text with milliseconds ('2026-11-22T03:04:05.123Z'),
-- so they sort and compare as text.  Ids are text.  Every table that belongs
-- to a project carries project_id.  See sql/README.md for each column.

CREATE TABLE projects (
	project_id	TEXT PRIMARY KEY,
	created_at	TEXT NOT NULL
) WITHOUT ROWID;

-- An API key is 'iris_<key_id>_<secret>'.  Only the SHA-256 of the whole
-- key is kept; key_id is the public part that finds the row.
CREATE TABLE api_keys (
	key_id		TEXT PRIMARY KEY,
	project_id	TEXT NOT NULL REFERENCES projects(project_id),
	name		TEXT,
	key_prefix	TEXT NOT NULL,
	key_hash	BLOB NOT NULL CHECK (length(key_hash) = 32),
	rate_limit	INTEGER NOT NULL DEFAULT 100
			CHECK (rate_limit BETWEEN 1 AND 1000000),
	rate_window_ms	INTEGER NOT NULL DEFAULT 60000
			CHECK (rate_window_ms BETWEEN 1000 AND 86400000),
	-- GCRA state: the theoretical arrival time, in us since the epoch.
	rate_tat_us	INTEGER NOT NULL DEFAULT 0,
	created_at	TEXT NOT NULL,
	revoked_at	TEXT
);
CREATE INDEX api_keys_project ON api_keys(project_id);

-- One row per request that reached the gateway, refused ones included.
CREATE TABLE audit_log (
	id		INTEGER PRIMARY KEY,
	created_at	TEXT NOT NULL,
	request_id	TEXT NOT NULL,
	method		TEXT NOT NULL,
	route		TEXT NOT NULL,
	status		INTEGER NOT NULL,
	error_code	TEXT,
	key_id		TEXT,
	project_id	TEXT,
	client_addr	TEXT,
	duration_ms	INTEGER NOT NULL
);
CREATE INDEX audit_log_created ON audit_log(created_at);
CREATE INDEX audit_log_project_created ON audit_log(project_id, created_at);
CREATE INDEX audit_log_key_created ON audit_log(key_id, created_at);

CREATE TABLE sandboxes (
	sandbox_id	TEXT PRIMARY KEY,
	project_id	TEXT NOT NULL REFERENCES projects(project_id),
	session_id	TEXT,
	provider	TEXT NOT NULL CHECK (provider IN ('local', 'e2b')),
	status		TEXT NOT NULL
			CHECK (status IN ('running', 'closed', 'expired', 'failed')),
	language	TEXT NOT NULL DEFAULT 'python',
	idle_timeout_s	INTEGER NOT NULL CHECK (idle_timeout_s > 0),
	created_at	TEXT NOT NULL,
	last_used_at	TEXT NOT NULL,
	expires_at	TEXT NOT NULL,
	closed_at	TEXT,
	executions	INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sandboxes_project_status ON sandboxes(project_id, status);
-- At most one live sandbox per session of a project.
CREATE UNIQUE INDEX sandboxes_live_session ON sandboxes(project_id, session_id)
	WHERE status = 'running' AND session_id IS NOT NULL;

CREATE TABLE sandbox_events (
	id		INTEGER PRIMARY KEY,
	created_at	TEXT NOT NULL,
	sandbox_id	TEXT NOT NULL,
	project_id	TEXT NOT NULL,
	event		TEXT NOT NULL
			CHECK (event IN ('created', 'closed', 'expired', 'failed')),
	detail		TEXT
);
CREATE INDEX sandbox_events_project_created ON sandbox_events(project_id, created_at);
CREATE INDEX sandbox_events_sandbox ON sandbox_events(sandbox_id);

CREATE TABLE executions (
	execution_id	TEXT PRIMARY KEY,
	request_id	TEXT NOT NULL,
	created_at	TEXT NOT NULL,
	project_id	TEXT NOT NULL,
	key_id		TEXT,
	session_id	TEXT,
	sandbox_id	TEXT,
	provider	TEXT,
	language	TEXT NOT NULL,
	code_bytes	INTEGER NOT NULL,
	code_sha256	TEXT NOT NULL,
	code		TEXT,
	status		TEXT NOT NULL CHECK (status IN
			('ok', 'error', 'timeout', 'upstream_error', 'rejected')),
	error_name	TEXT,
	error_message	TEXT,
	duration_ms	INTEGER NOT NULL DEFAULT 0,
	stdout_bytes	INTEGER NOT NULL DEFAULT 0,
	stderr_bytes	INTEGER NOT NULL DEFAULT 0,
	result_count	INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX executions_project_created ON executions(project_id, created_at);
CREATE INDEX executions_session ON executions(project_id, session_id);
