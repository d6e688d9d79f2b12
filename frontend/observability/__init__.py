"""What operators see of the frontend: Prometheus metrics, one log line per request,
and the recent history behind the console's live-health card."""
