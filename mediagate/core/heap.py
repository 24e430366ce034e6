"""What a long-running process does once it has started."""

import gc


def freeze_startup_objects() -> None:
    """Take everything built at start-up (the app, the catalog, SQLAlchemy's metadata,
    imported libraries) out of the garbage collector's scans.

    A full (generation 2) collection walks every tracked object; with the start-up heap in
    it, each one paused the event loop for 70-95 ms under the submit benchmark, which set
    the p99 latency. Frozen objects are never collected (they live as long as the process
    anyway); what requests allocate is collected as before. Measured: pauses of about 2 ms.
    """
    gc.collect()
    gc.freeze()
