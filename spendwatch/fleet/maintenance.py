"""Keeping the shared table fast: snapshot expiry, manifest merging, compaction, retention, orphan files.

Run by the lease holder every `maintain_every`, step by step, each step only while it still holds the
lease; every step is an ordinary optimistic commit, so it is safe beside the daemons appending meanwhile
(a retried commit is validated against what landed in between, and a rewrite whose files another
commit removed is dropped, to be tried at the next round).

- **Manifests.** Each append adds a manifest; planning a scan reads every one. Once there are more than
  `MERGE_MANIFESTS_OVER`, they are merged into few.
- **Expiry.** Every commit adds a snapshot, and each commit rewrites the metadata that lists them all:
  commits slow down as snapshots pile up. A snapshot is expired once it stopped being the current one
  `keep_snapshots` ago (a query that planned from it minutes ago can still read its files).
- **Compaction.** Each append writes a file per day it touches: a day ends as hundreds of small files.
  A closed day (before today, UTC) with more than one file is rewritten as one (sorted by start time,
  which the readers' row-group pruning likes); today once it has `COMPACT_TODAY_AT` files.
- **Retention.** With `[fleet] retention`, days older than that are dropped (whole files: no rewrite).
- **Orphan files.** Files no retained snapshot refers to — replaced by a compaction, written by a
  commit that failed — are deleted once older than `keep_snapshots`.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from spendwatch.fleet.settings import FleetConfig
from spendwatch.fleet.table import filesystem, strip_scheme

if TYPE_CHECKING:
    from pyiceberg.table import Table

logger = logging.getLogger("spendwatch.fleet")

MERGE_MANIFESTS_OVER = 16
COMPACT_TODAY_AT = 32
SUMMARY_MAINTENANCE = "spendwatch.maintenance"


@dataclass
class Done:
    expired_snapshots: int = 0
    merged_manifests: int = 0
    compacted_days: int = 0
    dropped_days: int = 0
    orphans_deleted: int = 0


def maintain(table: Table, settings: FleetConfig, now: datetime, still_held: Callable[[], bool]) -> Done:
    """One round of every step, stopping as soon as the lease is no longer held."""
    done = Done()
    steps = [
        ("manifests", lambda: setattr(done, "merged_manifests", merge_manifests(table))),
        ("retention", lambda: setattr(done, "dropped_days", drop_old_days(table, settings, now))),
        ("compaction", lambda: setattr(done, "compacted_days", compact(table, now))),
        ("expiry", lambda: setattr(done, "expired_snapshots", expire_snapshots(table, now - settings.keep_snapshots))),
        (
            "orphans",
            lambda: setattr(done, "orphans_deleted", delete_orphans(table, settings, now - settings.keep_snapshots)),
        ),
    ]
    for name, step in steps:
        if not still_held():
            break
        try:
            table.refresh()
            step()
        except Exception as error:
            logger.warning("fleet maintenance: %s failed (%s: %s); next round", name, type(error).__name__, error)
    return done


def day_files(table: Table) -> dict[date, list]:
    """The current snapshot's data files, by the UTC day they hold."""
    by_day: dict[date, list] = {}
    for task in table.scan().plan_files():
        day = date(1970, 1, 1) + timedelta(days=int(task.file.partition[0]))
        by_day.setdefault(day, []).append(task)
    return by_day


def compact(table: Table, now: datetime) -> int:
    """Rewrite each day with too many files as one; how many days were rewritten."""
    today = now.astimezone(UTC).date()
    compacted = 0
    for day, tasks in sorted(day_files(table).items()):
        if (day < today and len(tasks) > 1) or len(tasks) >= COMPACT_TODAY_AT:
            if compact_day(table, day, tasks):
                compacted += 1
            table.refresh()
    return compacted


def compact_day(table: Table, day: date, tasks: list) -> bool:
    """The day's files as one, in one commit that deletes exactly the files read: rows appended to the day
    meanwhile stay in their own files, and a commit that removed one of these files makes this one fail."""
    import pyarrow.compute as pc
    from pyiceberg.exceptions import ValidationException
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files

    rows = ArrowScan(
        table_metadata=table.metadata, io=table.io, projected_schema=table.schema(), row_filter=AlwaysTrue()
    ).to_table(tasks=tasks)
    rows = rows.take(pc.sort_indices(rows, sort_keys=[("start_time", "ascending")]))
    new_files = list(
        _dataframe_to_data_files(table_metadata=table.metadata, df=rows, io=table.io, write_uuid=uuid.uuid4())
    )
    transaction = table.transaction()
    summary = {SUMMARY_MAINTENANCE: f"compact {day.isoformat()}"}
    try:
        with transaction.update_snapshot(snapshot_properties=summary).overwrite() as rewrite:
            for task in tasks:
                rewrite.delete_data_file(task.file)
            for data_file in new_files:
                rewrite.append_data_file(data_file)
        transaction.commit_transaction()
    except ValidationException as error:
        logger.info("fleet maintenance: %s changed during its compaction (%s); next round", day, error)
        return False
    logger.info("fleet maintenance: compacted %s: %d files into %d", day, len(tasks), len(new_files))
    return True


def merge_manifests(table: Table) -> int:
    """Merge the current snapshot's data manifests when there are too many; how many were merged away."""
    from pyiceberg.manifest import ManifestContent

    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    before = [m for m in snapshot.manifests(table.io) if m.content == ManifestContent.DATA]
    if len(before) <= MERGE_MANIFESTS_OVER:
        return 0
    transaction = table.transaction()
    merge = transaction.update_snapshot(snapshot_properties={SUMMARY_MAINTENANCE: "merge manifests"}).merge_append()
    merge._merge_enabled = True  # whatever the table's merge properties say: this commit is the merge
    merge._min_count_to_merge = 2
    merge.commit()
    transaction.commit_transaction()
    table.refresh()
    after = [m for m in table.current_snapshot().manifests(table.io) if m.content == ManifestContent.DATA]
    logger.info("fleet maintenance: merged %d manifests into %d", len(before), len(after))
    return len(before) - len(after)


def expire_snapshots(table: Table, superseded_before: datetime) -> int:
    """Expire the snapshots that stopped being current before `superseded_before`; how many."""
    from pyiceberg.exceptions import CommitFailedException

    for _ in range(10):
        snapshots = sorted(table.metadata.snapshots, key=lambda snapshot: snapshot.timestamp_ms)
        current = table.metadata.current_snapshot_id
        cutoff_ms = int(superseded_before.timestamp() * 1000)
        expired = [
            snapshot.snapshot_id
            for snapshot, following in itertools.pairwise(snapshots)
            if following.timestamp_ms < cutoff_ms and snapshot.snapshot_id != current
        ]
        if not expired:
            return 0
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
            return len(expired)
        except CommitFailedException:
            table.refresh()
    return 0


def drop_old_days(table: Table, settings: FleetConfig, now: datetime) -> int:
    """With `[fleet] retention`: the days before it dropped, whole files at once; how many days."""
    if settings.retention is None:
        return 0
    from pyiceberg.expressions import LessThan

    first_kept = (now - settings.retention).astimezone(UTC).date()
    old = [day for day in day_files(table) if day < first_kept]
    if not old:
        return 0
    start = datetime.combine(first_kept, datetime.min.time(), tzinfo=UTC)
    table.delete(LessThan("start_time", start.isoformat()), snapshot_properties={SUMMARY_MAINTENANCE: "retention"})
    logger.info("fleet maintenance: dropped %d day(s) before %s", len(old), first_kept)
    return len(old)


def delete_orphans(table: Table, settings: FleetConfig, older_than: datetime) -> int:
    """Delete the table's files that no retained snapshot refers to and that are older than `older_than`."""
    import pyarrow.fs as pafs

    referenced: set[str] = set()
    manifests: dict[str, object] = {}
    for snapshot in table.metadata.snapshots:
        referenced.add(strip_scheme(snapshot.manifest_list))
        for manifest in snapshot.manifests(table.io):
            manifests[manifest.manifest_path] = manifest
    for path, manifest in manifests.items():
        referenced.add(strip_scheme(path))
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            referenced.add(strip_scheme(entry.data_file.file_path))
    location = table.metadata.location
    fs, _ = filesystem(settings, location)
    root = strip_scheme(location).rstrip("/")
    deleted = 0
    for folder in ("data", "metadata"):
        try:
            infos = fs.get_file_info(pafs.FileSelector(f"{root}/{folder}", recursive=True, allow_not_found=True))
        except OSError:
            continue
        for info in infos:
            if info.type != pafs.FileType.File or info.path in referenced:
                continue
            if folder == "metadata" and info.path.endswith(".metadata.json"):
                continue  # table metadata versions: pyiceberg keeps the last few itself
            if info.mtime is None or info.mtime.astimezone(UTC) >= older_than:
                continue
            fs.delete_file(info.path)
            deleted += 1
    if deleted:
        logger.info("fleet maintenance: deleted %d file(s) no snapshot uses", deleted)
    return deleted
