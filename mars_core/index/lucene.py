"""Stage 1's Lucene index: BM25 over each product's search text, with an exact category field.

Documents are written with Lucene's own `IndexWriter` (from the Anserini jar that ships with
pyserini) rather than Anserini's JSON indexer, because the category must be a keyword
(`StringField`): Anserini indexes extra JSON fields as analysed text, where "PATIO_TABLE"
becomes the terms "patio" and "tabl" and a filter on TABLE would leak patio tables.
Analysis (English, Porter stemming, stop words) and query building are pyserini's, and the
`id` / `contents` layout is Anserini's, so pyserini's `LuceneSearcher` reads the index too.

A build folder holds the Lucene index and, in document order, `products.arrow` (the catalogue
columns later stages read: `HIT_COLUMNS`) and `vectors.npy` (each product's image vector, see
`mars_core.index.vectors`). Both are uncompressed and memory-mapped, so opening a build reads
nothing up front, and a search takes its hits' rows by document number. The hits cross the
JNI bridge as two primitive arrays (document numbers and scores, Anserini's `ScoredDocs`)
instead of a wrapped Java object per hit.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from mars_core.infra.errors import IndexNotBuiltError
from mars_core.infra.io import remove_stale_staging, staging_folder
from mars_core.infra.runtime import ensure_jvm

INDEX_DIR = "index"
# A build is written into `<lucene folder>/.staging-<pid>-<random>`, then renamed into place;
# one left by a killed build is removed by the next.
STAGING_PREFIX = ".staging-"
PRODUCTS_FILE = "products.arrow"
ID, CONTENTS, CATEGORY = "id", "contents", "category"
# What the stages after BM25 read of a hit: the key, the item (one listing per item), the
# category (the lock, evaluation), what the agent's prompt and the result page show.
HIT_COLUMNS = (
    "key", "item_id", "domain", "name", "category", "brand", "color", "material", "style",
    "image_path",
)  # fmt: skip
# What a build records of each product: the hit columns and the content it was built from
# (a re-index whose LanceDB version is lost still knows what changed since).
BUILD_COLUMNS = (*HIT_COLUMNS, "content_hash")


@cache
def java() -> SimpleNamespace:
    """The Lucene and pyserini classes this module uses (the JVM starts on first use)."""
    ensure_jvm()
    from jnius import autoclass, cast
    from pyserini.analysis import Analyzer, get_lucene_analyzer
    from pyserini.search.lucene import querybuilder

    return SimpleNamespace(
        analyzer=get_lucene_analyzer(),  # Anserini's default: English, Porter, stop words
        Analyzer=Analyzer,
        qb=querybuilder,
        cast=cast,
        Paths=autoclass("java.nio.file.Paths"),
        FSDirectory=autoclass("org.apache.lucene.store.FSDirectory"),
        DirectoryReader=autoclass("org.apache.lucene.index.DirectoryReader"),
        IndexSearcher=autoclass("org.apache.lucene.search.IndexSearcher"),
        IndexWriter=autoclass("org.apache.lucene.index.IndexWriter"),
        IndexWriterConfig=autoclass("org.apache.lucene.index.IndexWriterConfig"),
        OpenMode=autoclass("org.apache.lucene.index.IndexWriterConfig$OpenMode"),
        LogByteSizeMergePolicy=autoclass("org.apache.lucene.index.LogByteSizeMergePolicy"),
        BM25Similarity=autoclass("org.apache.lucene.search.similarities.BM25Similarity"),
        Document=autoclass("org.apache.lucene.document.Document"),
        StringField=autoclass("org.apache.lucene.document.StringField"),
        TextField=autoclass("org.apache.lucene.document.TextField"),
        BinaryDocValuesField=autoclass("org.apache.lucene.document.BinaryDocValuesField"),
        Store=autoclass("org.apache.lucene.document.Field$Store"),
        BytesRef=autoclass("org.apache.lucene.util.BytesRef"),
        ScoredDocs=autoclass("io.anserini.search.ScoredDocs"),
    )


def product_document(key: str, category: str, search_text: str) -> Any:
    """One product as a Lucene document: exact id and category, analysed search text."""
    j = java()
    doc = j.Document()
    doc.add(j.StringField(ID, key, j.Store.YES))
    # Anserini's searcher breaks score ties by the id's doc values; keep the index readable by it.
    doc.add(j.BinaryDocValuesField(ID, j.BytesRef(key.encode())))
    doc.add(j.TextField(CONTENTS, search_text, j.Store.NO))
    doc.add(j.StringField(CATEGORY, category, j.Store.YES))
    return doc


def write_lucene_index(
    catalogue: pa.Table, out_dir: Path, *, aligned: Callable[[list[str], Path], None]
) -> int:
    """Index the catalogue into the new build folder `out_dir` (written aside, then renamed).

    Documents keep catalogue order (adjacent-only merges, one final segment), so document
    number i is row i of the `products.arrow` written beside the index. `aligned(keys,
    folder)` writes more files in that order into the folder before it is renamed (the
    vectors), so a build is published whole or not at all.
    """
    if out_dir.exists():
        raise FileExistsError(f"Lucene build folder {out_dir} exists; pick a new folder")
    remove_stale_staging(out_dir.parent, STAGING_PREFIX)
    tmp = staging_folder(out_dir.parent, STAGING_PREFIX)
    try:
        _write_documents(catalogue, tmp / INDEX_DIR)
        write_products(catalogue, tmp / PRODUCTS_FILE)
        aligned(catalogue["key"].to_pylist(), tmp)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return catalogue.num_rows


def _write_documents(catalogue: pa.Table, index_dir: Path) -> None:
    j = java()
    config = j.IndexWriterConfig(j.analyzer)
    config.setOpenMode(j.OpenMode.CREATE)
    config.setSimilarity(j.BM25Similarity())
    config.setMergePolicy(j.LogByteSizeMergePolicy())  # merges neighbours only: order kept
    config.setRAMBufferSizeMB(256.0)
    writer = j.IndexWriter(j.FSDirectory.open(j.Paths.get(str(index_dir))), config)
    try:
        columns = (catalogue[name].to_pylist() for name in ("key", "category", "search_text"))
        rows = zip(*columns, strict=True)
        for key, category, text in tqdm(rows, total=catalogue.num_rows, desc="lucene index"):
            writer.addDocument(product_document(key, category, text))
        writer.forceMerge(1)
        writer.commit()
    finally:
        writer.close()


def write_products(catalogue: pa.Table, path: Path) -> None:
    """`BUILD_COLUMNS` of the catalogue as an uncompressed Arrow file (memory-mappable), in
    one record batch: pyarrow's `take` on a column of several chunks joins them first, which
    would make every search cost the catalogue's size."""
    table = catalogue.select(list(BUILD_COLUMNS)).combine_chunks()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_products(build: Path, columns: Sequence[str] = HIT_COLUMNS) -> pa.Table:
    """`columns` of a build's `products.arrow`, memory-mapped: rows are read when taken, not
    at open."""
    path = build / PRODUCTS_FILE
    if not path.is_file():
        raise IndexNotBuiltError(
            f"index build {build} has no {PRODUCTS_FILE} (built by an earlier version): "
            "re-run `python -m flows.index` (it rebuilds without embedding again)"
        )
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all().select(list(columns))


@dataclass(frozen=True)
class LexicalHits:
    """Hits of one search, best first, as columns."""

    rows: np.ndarray  # document numbers (= rows of products.arrow and vectors.npy)
    scores: np.ndarray  # BM25 scores, float32 as Lucene computes them
    products: pa.Table  # the hits' `HIT_COLUMNS`, in hit order

    def __len__(self) -> int:
        return len(self.rows)


class LuceneIndex:
    """A BM25 searcher over one (immutable) build folder."""

    def __init__(self, path: Path, *, k1: float, b: float) -> None:
        j = java()
        self.path = path
        self.directory = j.FSDirectory.open(j.Paths.get(str(path / INDEX_DIR)))
        self.reader = j.DirectoryReader.open(self.directory)
        self.searcher = j.IndexSearcher(j.cast("org.apache.lucene.index.IndexReader", self.reader))
        self.searcher.setSimilarity(j.BM25Similarity(k1, b))
        self.products = read_products(path)
        self._analyze = j.Analyzer(j.analyzer).analyze
        self._check_order()

    def _check_order(self) -> None:
        """Document i must be row i of products.arrow, or hits would carry the wrong rows."""
        n = self.products.num_rows
        if int(self.reader.numDocs()) != n:
            raise ValueError(f"{self.path}: {self.reader.numDocs()} documents but {n} rows")
        stored = self.reader.storedFields()
        for doc in {0, n // 2, n - 1} if n else ():
            if stored.document(doc).get(ID) != self.products["key"][doc].as_py():
                raise ValueError(f"{self.path}: document order differs from products.arrow")

    @property
    def num_docs(self) -> int:
        return self.products.num_rows

    def analyze(self, text: str) -> list[str]:
        """The index's terms for `text` (lower-cased, stop words out, Porter stems)."""
        return list(self._analyze(text))

    def search(self, terms: list[str], *, category: str | None, k: int) -> LexicalHits:
        """Top `k` by BM25 over `terms`; with a category, only (and all of) its products match.

        The category is a FILTER clause: it restricts without scoring, so a locked query
        returns products of that category even when none contains a query word. Equal
        scores keep catalogue order.
        """
        top_docs = self.searcher.search(self.query(terms, category), k)
        top = java().ScoredDocs.fromTopDocs(top_docs, self.searcher)
        rows = np.asarray(top.lucene_docids, dtype=np.int64)
        scores = np.asarray(top.scores, dtype=np.float32)
        return LexicalHits(rows, scores, self.products.take(rows))

    def query(self, terms: list[str], category: str | None) -> Any:
        """The Lucene query `search` runs (public so a benchmark can hand pyserini the same)."""
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
        self.reader.close()
        self.directory.close()
