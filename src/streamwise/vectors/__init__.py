"""Vector store backends, each a `streamwise.engine.retrieval.VectorStore` once scoped to a node.

- `memory`: numpy, per namespace, gone on restart (Flowise's In-Memory Vector Store);
- `sqlite`: the embedded, persistent default, one SQLite file with sqlite-vec, namespaces as partitions;
- `faiss_folder`: a Faiss index and its docstore in a folder (Flowise's Faiss node);
- `chroma`: a Chroma server over HTTP (Flowise's Chroma node).

A backend holds the data; a `ScopedStore` (`scope.py`) is the `VectorStore` a node hands out: it says
which node is asking (for messages) and which embeddings it uses (a store filled by one model is never
searched with another's vectors). Shared rules live in small modules: `checks` (batches, dimensions),
`similarity` (cosine, maximal marginal relevance), `filters` (metadata equality), `namespaces`.
"""
