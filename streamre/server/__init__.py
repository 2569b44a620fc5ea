"""The streaming server: HTTP routes, WebSocket sessions, rooms and metrics."""
