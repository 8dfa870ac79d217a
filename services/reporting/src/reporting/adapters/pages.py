"""Entities stored many to a document: a page per source partition and hash bucket of the
entity's Kafka key, its entities as one zlib-compressed JSON value.

Why: FerretDB's cost is per document and per byte of JSON it turns into SQLite JSON. One
document per entity made storing the 900,000 entities of a 2,000,000-event rebuild take
most of its time (about 7,000 a second); compressed pages of a few dozen store them about
40 times faster, and a live batch still reads one document per entity it touches (the
entity's page). A page has the single writer of its partition, like every entity in it.

A generation's layout is fixed when it is first written and kept in its meta document
`pages|<generation>` (the number of buckets per partition); a generation written before
pages existed (no such document) keeps one document per entity until it is rebuilt.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from bson import Binary

Doc = dict[str, Any]
DEFAULT_BUCKETS = 4096  # a generation the live service starts: pages of about 16 at 64,000 entities a partition
ENTITIES_PER_PAGE = 16  # what a rebuild aims at, knowing how many entities each partition has
MIN_BUCKETS, MAX_BUCKETS = 64, 65536


def page_id(eid: str, home: tuple[str, int], buckets: int) -> str:
    """The page holding entity `eid` (`<topic>|<subject>`), whose records are on `home`
    (their topic and partition)."""
    topic, partition = home
    subject = eid[len(topic) + 1:]
    return f"{topic}|{partition}|{zlib.crc32(subject.encode('utf-8', 'surrogatepass')) % buckets}"


def buckets_for(entities_per_partition: int) -> int:
    """Buckets a partition gets for pages of about ENTITIES_PER_PAGE (a power of two)."""
    wanted = max(1, entities_per_partition // ENTITIES_PER_PAGE)
    return min(MAX_BUCKETS, max(MIN_BUCKETS, 1 << (wanted - 1).bit_length()))


def entity_text(doc: Doc) -> str:
    """An entity without its _id as compact JSON (what a page holds)."""
    return json.dumps({k: v for k, v in doc.items() if k != "_id"}, ensure_ascii=False, separators=(",", ":"))


def pack(pid: str, entities: dict[str, Doc]) -> Doc:
    return pack_texts(pid, {eid: entity_text(doc) for eid, doc in entities.items()})


def pack_texts(pid: str, texts: dict[str, str]) -> Doc:
    """A page as stored: {_id, z: zlib(JSON of entity id -> the entity's `entity_text`)}."""
    text = "{" + ",".join(f"{json.dumps(eid, ensure_ascii=False)}:{t}" for eid, t in texts.items()) + "}"
    return {"_id": pid, "z": Binary(zlib.compress(text.encode("utf-8", "surrogatepass"), 1))}


def unpack(doc: Doc) -> dict[str, Doc]:
    """The entities of a stored page, each with its _id."""
    body = json.loads(zlib.decompress(bytes(doc["z"])).decode("utf-8", "surrogatepass"))
    return {eid: {"_id": eid, **rest} for eid, rest in body.items()}

