"""The browser admin console: a small static app served by the frontend itself.

``static/`` holds plain HTML, CSS and ES modules (no build step, nothing fetched
from the internet); the app talks only to the admin JSON API under
/api/v1/admin with the cookie session. ``router`` serves it under /admin.
"""
