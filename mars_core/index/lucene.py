"""Stage 1's Lucene index: BM25 over each product's search text, with an exact category field.

Documents are written with Lucene's own `IndexWriter` (from the Anserini jar that ships with
pyserini) rather than Anserini's JSON indexer, because the category must be a keyword
(`StringField`): Anserini indexes extra JSON fields as analysed text, where "OUTDOOR_TABLE"
becomes the terms "outdoor" and "tabl" and a filter on TABLE would leak outdoor tables.
Everything else follows Anserini's layout (`id`, `contents`, `raw`, the English analyzer
with Porter stemming), so pyserini's `LuceneSearcher` reads the index as its own.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tqdm.auto import tqdm

from mars_core.runtime import ensure_jvm

ID, CONTENTS, CATEGORY, RAW = "id", "contents", "category", "raw"


@cache
def java() -> SimpleNamespace:
    """The Lucene and pyserini classes this module uses (the JVM starts on first use)."""
    ensure_jvm()
    from jnius import autoclass
    from pyserini.analysis import Analyzer, get_lucene_analyzer
    from pyserini.search.lucene import LuceneSearcher, querybuilder

    return SimpleNamespace(
        analyzer=get_lucene_analyzer(),  # Anserini's default: English, Porter, stopwords
        Analyzer=Analyzer,
        LuceneSearcher=LuceneSearcher,
        qb=querybuilder,
        Paths=autoclass("java.nio.file.Paths"),
        FSDirectory=autoclass("org.apache.lucene.store.FSDirectory"),
        IndexWriter=autoclass("org.apache.lucene.index.IndexWriter"),
        IndexWriterConfig=autoclass("org.apache.lucene.index.IndexWriterConfig"),
        OpenMode=autoclass("org.apache.lucene.index.IndexWriterConfig$OpenMode"),
        BM25Similarity=autoclass("org.apache.lucene.search.similarities.BM25Similarity"),
        Document=autoclass("org.apache.lucene.document.Document"),
        StringField=autoclass("org.apache.lucene.document.StringField"),
        TextField=autoclass("org.apache.lucene.document.TextField"),
        StoredField=autoclass("org.apache.lucene.document.StoredField"),
        BinaryDocValuesField=autoclass("org.apache.lucene.document.BinaryDocValuesField"),
        Store=autoclass("org.apache.lucene.document.Field$Store"),
        BytesRef=autoclass("org.apache.lucene.util.BytesRef"),
    )


def product_document(row: Mapping[str, Any]) -> Any:
    """One catalogue row as a Lucene document; the whole row is kept as JSON in `raw`."""
    j = java()
    doc = j.Document()
    doc.add(j.StringField(ID, row["key"], j.Store.YES))
    # Anserini breaks score ties by the id's doc values; without them its searcher fails.
    doc.add(j.BinaryDocValuesField(ID, j.BytesRef(row["key"].encode())))
    doc.add(j.TextField(CONTENTS, row["search_text"], j.Store.NO))
    doc.add(j.StringField(CATEGORY, row["category"], j.Store.YES))
    doc.add(j.StoredField(RAW, json.dumps(dict(row), ensure_ascii=False)))
    return doc


def write_lucene_index(
    rows: Iterable[Mapping[str, Any]], out_dir: Path, *, total: int | None = None
) -> int:
    """Index `rows` into the new folder `out_dir` (written aside, then renamed); returns the count.

    `rows` need `key`, `category` and `search_text`; every field is stored for the funnel.
    """
    if out_dir.exists():
        raise FileExistsError(f"Lucene index folder {out_dir} exists; pick a new folder")
    j = java()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir.parent))
    try:
        config = j.IndexWriterConfig(j.analyzer)
        config.setOpenMode(j.OpenMode.CREATE)
        config.setSimilarity(j.BM25Similarity())
        config.setRAMBufferSizeMB(256.0)
        writer = j.IndexWriter(j.FSDirectory.open(j.Paths.get(str(tmp))), config)
        count = 0
        try:
            for row in tqdm(rows, total=total, desc="lucene index", unit="doc"):
                writer.addDocument(product_document(row))
                count += 1
            writer.commit()
        finally:
            writer.close()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


@dataclass(frozen=True)
class LexicalHit:
    key: str
    score: float
    product: dict[str, Any]


class LuceneIndex:
    """A BM25 searcher over one (immutable) index folder."""

    def __init__(self, path: Path, *, k1: float, b: float) -> None:
        j = java()
        self.path = path
        self.searcher = j.LuceneSearcher(str(path))
        self.searcher.set_bm25(k1, b)
        self._analyze = j.Analyzer(j.analyzer).analyze

    @property
    def num_docs(self) -> int:
        return int(self.searcher.num_docs)

    def analyze(self, text: str) -> list[str]:
        """The index's terms for `text` (lower-cased, stop words out, Porter stems)."""
        return list(self._analyze(text))

    def search(self, terms: list[str], *, category: str | None, k: int) -> list[LexicalHit]:
        """Top `k` by BM25 over `terms`; with a category, only (and all of) its products match.

        The category is a FILTER clause: it restricts without scoring, so a locked query
        returns products of that category even when none contains a query word.
        """
        hits = self.searcher.search(self._query(terms, category), k=k)
        return [
            LexicalHit(hit.docid, float(hit.score), json.loads(hit.lucene_document.get(RAW)))
            for hit in hits
        ]

    def _query(self, terms: list[str], category: str | None) -> Any:
        j = java()
        occur = j.qb.JBooleanClauseOccur
        builder = j.qb.get_boolean_query_builder()
        for term, count in Counter(terms).items():
            query = j.qb.JTermQuery(j.qb.JTerm(CONTENTS, term))
            if count > 1:
                query = j.qb.get_boost_query(query, float(count))
            builder.add(query, occur.should.value)
        if category is not None:
            builder.add(j.qb.JTermQuery(j.qb.JTerm(CATEGORY, category)), occur.filter.value)
        return builder.build()

    def close(self) -> None:
        self.searcher.close()
