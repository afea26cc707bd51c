/*
 * Route rows the daemon's route-matcher tests share (the unit tests and
 * the fuzz target each add their own after these).
 */
#define ROUTE_TEST_ROWS							\
	{ .method = "GET", .pattern = "/health" },			\
	{ .method = "POST", .pattern = "/sandboxes" },			\
	{ .method = "GET", .pattern = "/sandboxes" },			\
	{ .method = "GET", .pattern = "/sandboxes/{id}" },		\
	{ .method = "DELETE", .pattern = "/sandboxes/{id}" }
