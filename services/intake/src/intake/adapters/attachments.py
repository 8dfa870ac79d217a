"""Letter attachments (scans, PDFs, photos) stored in intake's own database with GridFS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from gridfs.asynchronous import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

# What a letter may carry, recognised by the file's first bytes, not by its name.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


def sniff_content_type(head: bytes) -> str | None:
    for content_type, signatures in SIGNATURES.items():
        if any(head.startswith(s) for s in signatures):
            return content_type
    return None


@dataclass(frozen=True)
class StoredAttachment:
    attachment_id: str
    filename: str
    content_type: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"attachment_id": self.attachment_id, "filename": self.filename,
                "content_type": self.content_type, "size": self.size}


class AttachmentStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.bucket = AsyncGridFSBucket(db, bucket_name="attachments")

    async def put(self, filename: str, content_type: str, data: bytes, *, contact_id: str) -> StoredAttachment:
        file_id = await self.bucket.upload_from_stream(
            filename, data, metadata={"content_type": content_type, "contact_id": contact_id})
        return StoredAttachment(str(file_id), filename, content_type, len(data))

    async def get(self, attachment_id: str) -> tuple[dict[str, Any], bytes] | None:
        try:
            stream = await self.bucket.open_download_stream(ObjectId(attachment_id))
        except Exception:
            return None
        data = await stream.read()
        return {"filename": stream.filename, **(stream.metadata or {})}, data
