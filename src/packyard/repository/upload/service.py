"""Accept one uploaded distribution: check it, store its blobs, record it and re-render its pages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from packyard.db import Database
from packyard.repository import indexer
from packyard.repository.errors import FileAlreadyExists, UploadRejected
from packyard.repository.models import CoreMetadata, DistFile, Project
from packyard.repository.services import get_source, record
from packyard.repository.upload.archive import DistMetadata, inspect_sdist, inspect_wheel
from packyard.repository.upload.checks import (
    Candidate,
    check_digests,
    check_filename,
    check_shape,
    check_signature,
)
from packyard.repository.upload.multipart import UploadParts, discard
from packyard.storage import BlobStore


@dataclass(frozen=True)
class UploadResult:
    filename: str
    sha256: str
    created: bool

    @property
    def message(self) -> str:
        if self.created:
            return f"Stored {self.filename} (sha256 {self.sha256})."
        return f"{self.filename} is already stored with identical content; nothing changed."


def _inspect(c: Candidate, path: Path) -> DistMetadata:
    meta = inspect_wheel(path, c.filename) if c.filetype == "bdist_wheel" else inspect_sdist(path, c.filename)
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
        staged.handle.flush()
        meta = _inspect(candidate, staged.path)
        return _store(db, store, source_name, candidate, parts, meta, signature, uploaded_by)
    finally:
        discard(store, parts)


def _store_metadata(session: Session, raw: bytes) -> str:
    digest = hashlib.sha256(raw).hexdigest()
    if session.get(CoreMetadata, digest) is None:
        session.add(CoreMetadata(sha256=digest, data=raw))
    return digest


def _existing(session: Session, source_id: int, filename: str) -> DistFile | None:
    return session.scalar(select(DistFile).where(DistFile.source_id == source_id, DistFile.filename == filename))


def _duplicate(existing: DistFile, sha256: str) -> UploadResult:
    if existing.sha256 == sha256:
        return UploadResult(existing.filename, sha256, created=False)
    # The start of this message is API: twine and poetry look for "already exist" to skip a file.
    raise FileAlreadyExists(
        f"File already exists ('{existing.filename}', with sha256 hash '{existing.sha256}'). Published files "
        "are immutable; release a new version instead."
    )


def _store(
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
    sha256 = staged.digest
    try:
        with db.session() as session:
            source = get_source(session, source_name)
            existing = _existing(session, source.id, c.filename)
            if existing is not None:
                return _duplicate(existing, sha256)
            project = session.scalar(select(Project).where(Project.source_id == source.id, Project.name == c.name))
            if c.filetype == "sdist" and project is not None:
                other = session.scalar(
                    select(DistFile.filename).where(
                        DistFile.project_id == project.id,
                        DistFile.version == c.version,
                        DistFile.packagetype == "sdist",
                    )
                )
                if other:
                    raise UploadRejected(
                        f"Only one sdist may be uploaded per release; `{c.display_name}` "
                        f"{c.version} already has {other!r}."
                    )
            new_project = project is None
            if project is None:
                project = Project(source_id=source.id, name=c.name, display_name=meta.display_name or c.display_name)
                session.add(project)
                session.flush()
            # Blobs become durable before the row that points at them; a crash leaves an unseen blob, never
            # a row without its file.
            size = staged.size
            blake2, md5 = staged.blake2_256.hexdigest(), staged.md5.hexdigest()
            store.commit(staged)
            parts.content = None
            metadata_sha256 = _store_metadata(session, meta.raw) if c.filetype == "bdist_wheel" else None
            signature_sha256 = store.put_bytes(signature) if signature else None
            session.add(
                DistFile(
                    source_id=source.id,
                    project_id=project.id,
                    version=c.version,
                    filename=c.filename,
                    packagetype=c.filetype,
                    python_version=c.python_version,
                    requires_python=meta.requires_python,
                    size=size,
                    sha256=sha256,
                    blake2_256=blake2,
                    md5=md5,
                    metadata_sha256=metadata_sha256,
                    signature_sha256=signature_sha256,
                    uploaded_by=uploaded_by,
                )
            )
            event = record(session, "upload", source_id=source.id, project=c.name, filename=c.filename, detail=sha256)
            indexer.source_changed(session, source.id, c.name, event.id, new_project)
            return UploadResult(c.filename, sha256, created=True)
    except IntegrityError:
        # A concurrent upload of the same filename won the race; answer as if it had come first.
        with db.session() as session:
            source = get_source(session, source_name)
            existing = _existing(session, source.id, c.filename)
            if existing is None:
                raise
            return _duplicate(existing, sha256)
