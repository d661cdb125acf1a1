"""HTTP: the routes, request validation and transcript injection, the server."""
