"""Video anonymisation: decode and encode (io), link faces over time (tracking), run a
clip through the detector and the masking (pipeline), the background job queue (jobs,
worker) and the console's thumbnails (poster)."""
