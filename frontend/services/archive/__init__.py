"""Storage-backed mode: every detect/mask call recorded (original, job, processed output),
read back by the admin API, and deleted again through a cleanup queue.

Metadata lives in the database, the photos in object storage. ``Archive`` is the one
object the app holds (``app.state.archive``); it is composed of one part per job:

- ``naming.py``: object keys and content types of originals and outputs, id parsing
- ``recording.py``: what a call records and how (``Recorder``: try_record, record_mask)
- ``browsing.py``: the admin API's reads (``Browser``: list/get images and jobs, URLs, objects)
- ``stats.py``: the admin API's statistics (``Statistics``: stats)
- ``cleanup.py``: deleting an image, and the queue that deletes objects (``Cleaner``)

This module also has ``clean_up``, one run of that queue outside the app.
"""

from __future__ import annotations

import databases

from frontend.persistence.database import create_database
from frontend.services.archive.browsing import Browser
from frontend.services.archive.cleanup import Cleaner, CleanupReport
from frontend.services.archive.recording import (
    NewJob,
    Recorded,
    Recorder,
    Upload,
    detect_job,
    mask_job,
    stamp,
    upload_of,
)
from frontend.services.archive.stats import Statistics
from frontend.settings import Settings
from frontend.storage import ObjectStore, open_object_store

__all__ = ["Archive", "CleanupReport", "NewJob", "Recorded", "Upload", "clean_up", "detect_job", "mask_job",
           "stamp", "upload_of"]


class Archive(Recorder, Browser, Statistics, Cleaner):
    """Records calls, reads them back, counts them and deletes them, over one database and
    one object store."""

    def __init__(self, database: databases.Database, objects: ObjectStore):
        self.database = database
        self.objects = objects


async def clean_up(settings: Settings) -> tuple[CleanupReport, int]:
    """One run of the whole cleanup queue outside the app (start-up, `manage cleanup`):
    (what it did, tasks still queued). Raises when the database or the store cannot be opened."""
    objects = open_object_store(settings)
    await objects.start()
    try:
        async with create_database(settings.database_url) as database:
            archive = Archive(database, objects)
            report = await archive.run_cleanup()
            return report, await archive.pending_cleanup()
    finally:
        await objects.close()
