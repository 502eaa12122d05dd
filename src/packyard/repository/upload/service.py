"""Accept one uploaded distribution: check it, store its blobs, record it and re-render its pages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.db import Database, table_of, utcnow
from packyard.repository.errors import FileAlreadyExists, UploadRejected
from packyard.repository.index import indexer
from packyard.repository.models import CoreMetadata, DistFile, Project, Source
from packyard.repository.services import get_source
from packyard.repository.upload.archive import DistMetadata, inspect_sdist, inspect_wheel
from packyard.repository.upload.checks import (
    Candidate,
    check_digests,
    check_filename,
    check_shape,
    check_signature,
)
from packyard.repository.upload.multipart import UploadParts, discard
from packyard.storage import BlobStore, StagedBlob

_FILES = table_of(DistFile)
_SOURCE_ROW = select(table_of(Source).c.id, table_of(Source).c.type).where(table_of(Source).c.name == bindparam("name"))
_EXISTING = select(_FILES.c.filename, _FILES.c.sha256).where(
    _FILES.c.source_id == bindparam("source_id"), _FILES.c.filename == bindparam("filename")
)
_PROJECT_ID = select(table_of(Project).c.id).where(
    table_of(Project).c.source_id == bindparam("source_id"), table_of(Project).c.name == bindparam("name")
)
_INSERT_PROJECT = table_of(Project).insert().returning(table_of(Project).c.id)
_RELEASE_SDIST = select(_FILES.c.filename).where(
    _FILES.c.project_id == bindparam("project_id"),
    _FILES.c.version == bindparam("version"),
    _FILES.c.packagetype == "sdist",
)
_INSERT_FILE = _FILES.insert()
_METADATA = table_of(CoreMetadata)
_METADATA_EXISTS = select(_METADATA.c.sha256).where(_METADATA.c.sha256 == bindparam("sha256"))
_INSERT_METADATA = _METADATA.insert()


@dataclass(frozen=True)
class UploadResult:
    filename: str
    sha256: str
    created: bool
    serial: int | None = None  # the change-log event of a created file
    project: str = ""
    new_project: bool = False  # the project's first file in this source

    @property
    def message(self) -> str:
        if self.created:
            return f"Stored {self.filename} (sha256 {self.sha256})."
        return f"{self.filename} is already stored with identical content; nothing changed."


def _inspect(c: Candidate, staged: StagedBlob) -> DistMetadata:
    with staged.open() as file:
        meta = inspect_wheel(file, c.filename) if c.filetype == "bdist_wheel" else inspect_sdist(file, c.filename)
    if meta.name != c.name:
        raise UploadRejected(
            f"The metadata inside {c.filename!r} names project `{meta.name}`, not "
            f"`{c.display_name}`; rebuild the distribution."
        )
    if meta.version != check_filename(c)[1]:
        raise UploadRejected(
            f"The metadata inside {c.filename!r} says version `{meta.version}`, but the "
            f"filename says `{c.version}`; rebuild the distribution."
        )
    return meta


def accept_upload(
    db: Database, store: BlobStore, source_name: str, parts: UploadParts, uploaded_by: str
) -> UploadResult:
    """Validate in order (shape, filename, digests, archive, state) and store nothing unless all pass."""
    try:
        candidate = check_shape(parts)
        check_filename(candidate)
        check_digests(parts)
        signature = check_signature(parts.signature)
        staged = parts.content
        assert staged is not None
        meta = _inspect(candidate, staged)
        return _store_with_retry(db, store, source_name, candidate, parts, meta, signature, uploaded_by)
    finally:
        discard(store, parts)


def _store_metadata(session: Session, raw: bytes) -> str:
    digest = hashlib.sha256(raw).hexdigest()
    if session.scalar(_METADATA_EXISTS, {"sha256": digest}) is None:
        session.execute(_INSERT_METADATA, {"sha256": digest, "data": raw})
    return digest


def _existing(session: Session, source_id: int, filename: str) -> tuple[str, str] | None:
    """(filename, sha256) of a file already in the source under this name."""
    row = session.execute(_EXISTING, {"source_id": source_id, "filename": filename}).first()
    return (row.filename, row.sha256) if row else None


def _duplicate(existing: tuple[str, str], sha256: str) -> UploadResult:
    filename, existing_sha256 = existing
    if existing_sha256 == sha256:
        return UploadResult(filename, sha256, created=False)
    # The start of this message is API: twine and poetry look for "already exist" to skip a file.
    raise FileAlreadyExists(
        f"File already exists ('{filename}', with sha256 hash '{existing_sha256}'). Published files "
        "are immutable; release a new version instead."
    )


@dataclass(frozen=True)
class _Digests:
    sha256: str
    blake2_256: str
    md5: str
    size: int


def _store_with_retry(
    db: Database,
    store: BlobStore,
    source_name: str,
    c: Candidate,
    parts: UploadParts,
    meta: DistMetadata,
    signature: bytes | None,
    uploaded_by: str,
) -> UploadResult:
    staged = parts.content
    assert staged is not None
    digests = _Digests(staged.digest, staged.blake2_256.hexdigest(), staged.md5.hexdigest(), staged.size)
    for attempt in range(2):
        try:
            return _store(db, store, source_name, c, parts, meta, signature, uploaded_by, digests)
        except IntegrityError:
            # A concurrent upload won a race: the same filename (answer as if it had come first), or the
            # first file of the same new project (run once more; the project row exists now).
            with db.session() as session:
                existing = _existing(session, get_source(session, source_name).id, c.filename)
            if existing is not None:
                return _duplicate(existing, digests.sha256)
            if attempt:
                raise
    raise AssertionError("unreachable")


def _store(
    db: Database,
    store: BlobStore,
    source_name: str,
    c: Candidate,
    parts: UploadParts,
    meta: DistMetadata,
    signature: bytes | None,
    uploaded_by: str,
    digests: _Digests,
) -> UploadResult:
    sha256 = digests.sha256
    with db.session() as session:
        row = session.execute(_SOURCE_ROW, {"name": source_name}).first()
        if row is None:
            get_source(session, source_name)  # NotFound, naming the sources there are
        assert row is not None
        source_id = row.id
        if row.type == "local-r":
            raise UploadRejected(
                f"Source `{source_name}` is a `local-r` source for R packages; upload Python distributions to a "
                f"`local-python` source, or R packages to `/upload/r/{source_name}`."
            )
        existing = _existing(session, source_id, c.filename)
        if existing is not None:
            return _duplicate(existing, sha256)
        project_id = session.scalar(_PROJECT_ID, {"source_id": source_id, "name": c.name})
        if c.filetype == "sdist" and project_id is not None:
            other = session.scalar(_RELEASE_SDIST, {"project_id": project_id, "version": c.version})
            if other:
                raise UploadRejected(
                    f"Only one sdist may be uploaded per release; `{c.display_name}` {c.version} already has {other!r}."
                )
        new_project = project_id is None
        if project_id is None:
            display = meta.display_name or c.display_name
            project_id = session.execute(
                _INSERT_PROJECT,
                {"source_id": source_id, "name": c.name, "display_name": display, "created_at": utcnow()},
            ).scalar_one()
        # Blobs become durable before the row that points at them; a crash leaves an unseen blob, never
        # a row without its file.
        if parts.content is not None:  # a retried attempt finds it committed already
            store.commit(parts.content)
            parts.content = None
        metadata_sha256 = _store_metadata(session, meta.raw) if c.filetype == "bdist_wheel" else None
        signature_sha256 = store.put_bytes(signature) if signature else None
        session.execute(
            _INSERT_FILE,
            {
                "source_id": source_id,
                "project_id": project_id,
                "version": c.version,
                "filename": c.filename,
                "packagetype": c.filetype,
                "python_version": c.python_version,
                "requires_python": meta.requires_python,
                "size": digests.size,
                "sha256": sha256,
                "blake2_256": digests.blake2_256,
                "md5": digests.md5,
                "metadata_sha256": metadata_sha256,
                "signature_sha256": signature_sha256,
                "yanked": False,
                "yanked_reason": "",
                "uploaded_at": utcnow(),
                "uploaded_by": uploaded_by,
            },
        )
        serial = record(session, "upload", source_id=source_id, project=c.name, filename=c.filename, detail=sha256)
        indexer.source_changed(session, source_id, c.name, serial, new_project)
        return UploadResult(c.filename, sha256, created=True, serial=serial, project=c.name, new_project=new_project)
