"""Accept one uploaded R source package: check it, store its blob and DESCRIPTION, record it."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from packyard.changelog.events import record
from packyard.db import Database, utcnow
from packyard.repository.cran.archive import RPackage, inspect_r_package
from packyard.repository.errors import UploadRejected
from packyard.repository.index import indexer
from packyard.repository.names import is_safe_filename
from packyard.repository.services import get_source
from packyard.repository.upload.multipart import UploadParts, discard
from packyard.repository.upload.service import (
    _INSERT_FILE,
    _INSERT_PROJECT,
    _PROJECT_ID,
    UploadResult,
    _duplicate,
    _existing,
    _store_metadata,
)
from packyard.storage import BlobStore

R_SOURCE = "local-r"
PACKAGETYPE = "r-source"  # `files.packagetype` of an R source package


def check_source_type(source_name: str, source_type: str, wanted: str) -> None:
    """An R package goes to a `local-r` source, a Python distribution to a `local-python` one."""
    if source_type == wanted:
        return
    if wanted == R_SOURCE:
        raise UploadRejected(
            f"Source `{source_name}` is a `{source_type}` source, not `local-r`; upload R packages to a source "
            "made with `packyard source create --type local-r`."
        )
    raise UploadRejected(
        f"Source `{source_name}` is a `local-r` source for R packages; upload Python distributions to a "
        f"`local-python` source, or R packages to `/upload/r/{source_name}`."
    )


def accept_r_upload(
    db: Database, store: BlobStore, source_name: str, parts: UploadParts, uploaded_by: str
) -> UploadResult:
    """Validate (form, filename, archive, DESCRIPTION, state) and store nothing unless all pass."""
    try:
        staged = parts.content
        if staged is None:
            raise UploadRejected(
                "The upload has no file; send the package as the multipart field `content`, e.g. "
                "`curl -F content=@mypkg_1.0.tar.gz`."
            )
        filename = parts.content_filename
        if not is_safe_filename(filename):
            raise UploadRejected(
                f"Invalid filename {filename[:200]!r}: an R source package is `<package>_<version>.tar.gz`, "
                "with no path."
            )
        with staged.open() as file:
            package = inspect_r_package(file, filename)
        for attempt in range(2):
            try:
                return _store(db, store, source_name, parts, package, filename, uploaded_by)
            except IntegrityError:
                # A concurrent upload of the same file or of the package's first version won the race.
                with db.session() as session:
                    existing = _existing(session, get_source(session, source_name).id, filename)
                if existing is not None:
                    return _duplicate(existing, staged.digest)
                if attempt:
                    raise
        raise AssertionError("unreachable")
    finally:
        discard(store, parts)


def _store(
    db: Database,
    store: BlobStore,
    source_name: str,
    parts: UploadParts,
    package: RPackage,
    filename: str,
    uploaded_by: str,
) -> UploadResult:
    staged = parts.content
    assert staged is not None
    sha256, size = staged.digest, staged.size
    md5, blake2 = staged.md5.hexdigest(), staged.blake2_256.hexdigest()
    with db.session() as session:
        source = get_source(session, source_name)
        check_source_type(source_name, source.type, R_SOURCE)
        existing = _existing(session, source.id, filename)
        if existing is not None:
            return _duplicate(existing, sha256)
        # R package names are case-sensitive and keep their dots: the name is stored as written.
        project_id = session.scalar(_PROJECT_ID, {"source_id": source.id, "name": package.name})
        new_project = project_id is None
        if project_id is None:
            project_id = session.execute(
                _INSERT_PROJECT,
                {"source_id": source.id, "name": package.name, "display_name": package.name, "created_at": utcnow()},
            ).scalar_one()
        # Durable before the row that points at it (see upload/service.py).
        store.commit(staged)
        parts.content = None
        session.execute(
            _INSERT_FILE,
            {
                "source_id": source.id,
                "project_id": project_id,
                "version": package.version,
                "filename": filename,
                "packagetype": PACKAGETYPE,
                "python_version": "",
                "requires_python": None,
                "size": size,
                "sha256": sha256,
                "blake2_256": blake2,
                "md5": md5,
                "metadata_sha256": _store_metadata(session, package.raw),
                "signature_sha256": None,
                "yanked": False,
                "yanked_reason": "",
                "uploaded_at": utcnow(),
                "uploaded_by": uploaded_by,
            },
        )
        name = package.name
        serial = record(session, "upload", source_id=source.id, project=name, filename=filename, detail=sha256)
        indexer.source_changed(session, source.id, name, serial, new_project)
        return UploadResult(filename, sha256, created=True, serial=serial, project=name, new_project=new_project)
