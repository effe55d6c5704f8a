"""Full-text search with Chinese word segmentation (R-DOC-3).

Text is cut into words by jieba before it reaches the database, so the database's own full-text
engine only has to split on spaces: SQLite's FTS5 (`unicode61`) on the embedded default,
`to_tsvector('simple', …)` on PostgreSQL. Without segmentation both would treat a run of Chinese
characters as one token and miss two-character words such as 考核 inside a sentence.

The index row is written in the transaction that writes the version, so a committed version is
always findable and a rolled-back one never is. Documents at 秘密 and above contribute their
title, abstract and keywords only (docs/documents.md says why).
"""
from __future__ import annotations

import logging
import re
import threading

from sqlalchemy import Float, Integer, text
from sqlalchemy.orm import Session

from .models import DocumentSearch

_WORD = re.compile(r"\w")
_lock = threading.Lock()
_jieba = None


def _segmenter():
    global _jieba
    with _lock:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba = jieba
    return _jieba


def segment(value: str) -> str:
    """Words for the index: search-engine mode also emits the short words inside long ones
    (本季度 → 本季, 季度, 本季度), so a query for a part finds the whole. Dictionary words only
    (HMM off) on both sides: five times faster on unusual text, and the same cut for the index
    and the query."""
    words = (w.strip().lower() for w in _segmenter().cut_for_search(value or "", HMM=False))
    return " ".join(w for w in words if w and _WORD.search(w))


def query_terms(query: str) -> list[str]:
    words = (w.strip().lower() for w in _segmenter().cut(query or "", HMM=False))
    return list(dict.fromkeys(w for w in words if w and _WORD.search(w)))


def index(s: Session, document, version_number: int, words: str, body_indexed: bool, note: str | None) -> None:
    """Write the index row; `words` is the body already segmented (outside the transaction)."""
    row = s.get(DocumentSearch, document.id)
    if row is None:
        row = DocumentSearch(document_id=document.id)
        s.add(row)
    row.version_number = version_number
    row.title = segment(document.title)
    row.abstract = segment(document.abstract)
    row.keywords = segment(" ".join(document.keywords or []))
    row.body = words if body_indexed else ""
    row.body_indexed = body_indexed
    row.note = note


def index_metadata(s: Session, document) -> None:
    """Refresh title, abstract and keywords; keep the body already indexed."""
    row = s.get(DocumentSearch, document.id)
    if row is not None:
        row.title = segment(document.title)
        row.abstract = segment(document.abstract)
        row.keywords = segment(" ".join(document.keywords or []))


def drop_body(s: Session, document_id: int, note: str) -> None:
    row = s.get(DocumentSearch, document_id)
    if row is not None:
        row.body = ""
        row.body_indexed = False
        row.note = note


def matches(s: Session, query: str):
    """A subquery (document_id, rank) of documents matching every word of `query`; lower rank
    is better. None when the query has no words."""
    terms = query_terms(query)
    if not terms:
        return None
    if s.bind.dialect.name == "postgresql":
        statement = text(
            "SELECT document_id, -ts_rank(tsv, q) AS rank FROM document_search, "
            "plainto_tsquery('simple', :terms) AS q WHERE tsv @@ q"
        ).bindparams(terms=" ".join(terms))
    else:
        expression = " ".join('"' + t.replace('"', '""') + '"' for t in terms)
        statement = text(
            "SELECT rowid AS document_id, bm25(document_fts, 10.0, 4.0, 6.0, 1.0) AS rank "
            "FROM document_fts WHERE document_fts MATCH :expression"
        ).bindparams(expression=expression)
    return statement.columns(document_id=Integer, rank=Float).subquery("matches")
