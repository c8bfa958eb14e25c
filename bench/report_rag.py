"""The retrieval (RAG) part of bench/results.md, from the `rag` figures of bench/run.py's summary."""

from __future__ import annotations

from typing import Any

X = "\u00d7"
NONE = "\u2013"


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "not measured"
    return "**pass**" if passed else "**FAIL**"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _ms(d: dict[str, float]) -> str:
    return f"{d['median']:.2f} / {d['p95']:.2f}"


def _rag(s: dict[str, Any]) -> dict[str, Any] | None:
    rag = s.get("rag")
    return rag if isinstance(rag, dict) and "local" in rag else None


def phases(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The RAG phases whose other-process CPU the report checks (title, figures with `other_cpu`)."""
    rag = _rag(s)
    if rag is None:
        return []
    out = [
        (f"RAG ingest round {i + 1} ({way})", r[way])
        for i, r in enumerate(rag["local"]["rounds"])
        for way in ("direct", "cli", "route")
    ]
    out += [
        ("RAG: streams during an ingest", rag["under_ingest"]),
        ("RAG: first token with retrieval", rag["first_token"]),
        ("RAG: ingest at the stub", rag["stub"]),
        ("RAG: retrieval", rag["retrieval"]),
        ("RAG: big-file upsert", rag["memory"]),
    ]
    return out


def _row(what: str, measured: str, target: str, share: float | None, passed: bool | None) -> list[str]:
    return [
        f"**RAG** {what}",
        measured,
        target,
        NONE if share is None else f"{share:.2f}",
        NONE,
        _verdict(passed),
    ]


def rows(s: dict[str, Any]) -> list[list[str]]:
    """Rows for the targets table."""
    rag = s.get("rag") or {}
    if _rag(s) is None:
        reason = str(rag.get("skipped") or rag.get("error") or "not run")
        return [["RAG (retrieval) targets", reason, NONE, NONE, NONE, "not measured"]]
    local, mem, load, verdicts = rag["local"], rag["memory"], rag["under_ingest"], rag["verdicts"]
    n, goal = local["chunks"], local["target"]
    out = []
    for way, what, basis in (
        ("route", "upsert route", "warm"),
        ("cli", "`streamwise ingest`", "load + first pass"),
    ):
        each = ", ".join(f"{r[f'{way}_ratio']:.2f}" for r in local["rounds"])
        out.append(
            _row(
                f"{what}, {n} chunks, localEmbeddings: chunks/s vs the model's own ({basis})",
                f"{local[f'{way}_ratio']:.2f} (each round: {each})",
                f"≥ {goal:g}",
                local[f"{way}_ratio"] / goal,
                local[f"{way}_pass"],
            )
        )
    out.append(
        _row(
            f"server's peak RSS growth, upsert of a {mem['file_bytes'] / 1e6:.0f} MB text file",
            f"{mem['growth_mib']:.0f} MiB = {mem['growth_vs_file']:.1f}{X} the file",
            f"≤ {mem['target']:g}{X} the file",
            mem["growth_vs_file"] / mem["target"],
            mem["pass"],
        )
    )
    for key, what in (("ttft", "first token (20 tokens)"), ("long", "2000-token answer")):
        if "ttft_ratio" in load:
            ratio, during, alone = load[f"{key}_ratio"], load[f"{key}_during_ms"], load[f"{key}_alone_ms"]
            measured = f"{ratio:.2f}{X} ({during['median']:.2f} vs {alone['median']:.2f} ms)"
            share, passed = ratio / load["target"], load["pass"]
        else:
            measured, share, passed = str(load.get("error")), None, False
        target = f"≤ {rag['targets']['under_ingest_ratio']['target']:g}{X}"
        out.append(
            _row(
                f"another chatflow's {what} during a local ingest vs without", measured, target, share, passed
            )
        )
    search, limit = verdicts["search_100k_ms"], rag["targets"]["search_100k_ms"]["target"]
    out.append(
        _row(
            "search of the embedded store at 100,000 chunks (median)",
            NONE if search is None else f"{search:.2f} ms",
            f"≤ {limit:g} ms",
            None if search is None else search / limit,
            verdicts["search_pass"],
        )
    )
    added, budget = verdicts["rag_added_ms"]["conversation"], verdicts["rag_budget_ms"]
    out.append(
        _row(
            "first token added by retrieval (vs the same chain without it)",
            f"{added:.2f} ms",
            f"≤ embed + search + 5 = {budget:.2f} ms",
            added / budget,
            verdicts["rag_pass"],
        )
    )
    return out


def _direct(r: dict[str, Any]) -> str:
    d = r["direct"]
    return (
        f"load {d['load_s']:.2f} s, first pass {d['pass_s'][0]:.2f} s, warm pass {d['pass_s'][1]:.2f} s: "
        f"cold {d['cold_rate']:.1f}, warm {d['warm_rate']:.1f}"
    )


def sections(s: dict[str, Any]) -> list[str]:
    rag = _rag(s)
    if rag is None:
        return []
    local, stub, mem, load = rag["local"], rag["stub"], rag["memory"], rag["under_ingest"]
    first = rag["first_token"]
    retrieval, verdicts, plan = rag["retrieval"], rag["verdicts"], rag["plan"]
    n = local["chunks"]
    out = [
        "## Retrieval (RAG)",
        "",
        "Measured by `bench/bench_rag.py` (run alone: `.venv/bin/python bench/bench_rag.py [--quick]`,",
        "JSON on stdout) on servers of its own: `streamwise start` with a fresh data dir, chatflows of",
        "the seeded *Ask your documents* shape — Text File → Recursive Character Text Splitter",
        "(chunkSize 1000, chunkOverlap 0) → Embedded Vector Store (sqlite-vec, topK 4) → Conversational",
        "Retrieval QA Chain with Buffer Memory and sources, on ChatOpenAI at the stub (20-token answers).",
        "The corpus is numbered passages of `tests/fixtures/retrieval/labelled.json`, 880 to 999",
        "characters each, one blank line apart: the splitter cuts exactly one chunk per paragraph (checked",
        "on the very file), so the chunks embedded directly are the ones ingested.",
        "",
        f"### Ingest with localEmbeddings (all-MiniLM-L6-v2 int8), {n} chunks",
        "",
        "Each round runs, in an order that turns with the round: the model alone in a fresh process",
        f"(`.venv/bin/python bench/rag_parts.py embed local-{n}.txt 1`: the runtime localEmbeddings uses,",
        f"loaded, one pass over the chunks, one more); `streamwise ingest CHATFLOW_ID local-{n}.txt` as a",
        "subprocess against the server's data dir; and `POST /api/v1/vector/upsert/CHATFLOW_ID` with the",
        "file as multipart `files`, to the server, whose model is loaded already (the RAG corpus went in",
        "first). The CLI's rate is from its line `N chunk(s); embedding them` to its line `… added`, so",
        "it includes the model's load and first pass, and is compared with the direct load + first pass",
        "(`cold`); the route is compared with the direct warm pass. Ratios are per round; the verdict",
        "takes their median. Chunks/s:",
        "",
    ]
    table = []
    for i, r in enumerate(local["rounds"]):
        cli = r["cli"]
        table.append(
            [
                str(i + 1),
                _direct(r),
                f"{cli['chunks_per_s']:.1f} (whole process {cli['process_s']:.1f} s = "
                f"{cli['process_chunks_per_s']:.1f}/s; {cli['before_embedding_s']:.1f} s before embedding)",
                f"{r['route']['chunks_per_s']:.1f}",
                f"{r['cli_ratio']:.2f} ({r['cli_vs_warm']:.2f} vs warm)",
                f"{r['route_ratio']:.2f}",
                "yes" if r["same_chunks"] else "NO",
            ]
        )
    out += _table(
        ["round", "model alone", "CLI", "route", "CLI / cold", "route / warm", "same chunks"], table
    )
    if not local["route_pass"] or not local["cli_pass"]:
        steps = [r[way] for r in local["rounds"] for way in ("direct", "cli", "route")]
        missed = [
            f"{way} {local[f'{way}_ratio']:.2f}" for way in ("route", "cli") if not local[f"{way}_pass"]
        ]
        seconds = "; ".join(
            f"round {i + 1}: model alone {r['direct']['pass_s'][1]:.2f} s a warm pass, `streamwise ingest` "
            f"{r['cli']['embedding_s']:.2f} s, the route {r['route']['seconds']:.2f} s"
            for i, r in enumerate(local["rounds"])
        )
        out += [
            "",
            f"**Missed** ({', '.join(missed)} of the model's own rate){_noise(steps)}. The same {n} chunks",
            f"took ({seconds}); `streamwise ingest`'s time includes its model's load and first pass, and it",
            "runs the same upsert code as the route, so what the route adds is the server process's.",
        ]
        if any(_noisy(step) is not None for step in steps):
            out[-1] += (
                " The embedding threads run at nice +10: other work on the machine takes the cores first."
            )
    out += [
        "",
        f"`streamwise ingest` peaked at {local['rounds'][-1]['cli']['peak_rss_mib']:.0f} MiB (its own",
        f"process, model loaded). The server's first upsert, the {rag['corpus_upsert']['chunks']} chunks of",
        f"the RAG corpus with the model's load, ran at {rag['corpus_upsert']['chunks_per_s']:.1f} chunks/s.",
        "",
        f"### Ingest with openAIEmbeddings at the stub, {stub['route']['chunks']:,} chunks",
        "",
        "What Streamwise's own ingest path costs: the stub's embeddings are a hashed bag of words",
        f"(`dimensions` {retrieval['dimension']}). The stub alone is sent the requests the server makes",
        "(64 texts each, the upsert's batch, one after another) by httpx from the benchmark process.",
        "",
    ]
    cli, route, alone = stub["cli"], stub["route"], stub["stub"]
    lines = [
        ("the stub alone", alone["chunks_per_s"], alone["seconds"], None),
        ("upsert route (multipart)", route["chunks_per_s"], route["seconds"], stub["route_vs_stub"]),
        (
            "`streamwise ingest`, embedding phase",
            cli["chunks_per_s"],
            cli["embedding_s"],
            stub["cli_vs_stub"],
        ),
        ("`streamwise ingest`, whole process", cli["process_chunks_per_s"], cli["process_s"], None),
    ]
    out += _table(
        ["", "chunks/s", "seconds", "vs the stub alone"],
        [
            [name, f"{rate:,.0f}", f"{sec:.2f}", NONE if vs is None else f"{vs:.2f}"]
            for name, rate, sec, vs in lines
        ],
    )
    out += [
        "",
        "The upsert's batches go out one at a time (64 chunks: look up their records, embed, add), so the",
        "stub waits while the server checks records and writes, and the server waits for the stub.",
        f"`streamwise ingest` peaked at {cli['peak_rss_mib']:.0f} MiB: it reads and splits every file into",
        "a list before it embeds (to size its progress bar).",
        "",
        f"### Memory: upsert of a {mem['file_bytes'] / 1e6:.1f} MB text file",
        "",
        f"A fresh server; openAIEmbeddings at the stub; {mem['chunks']:,} chunks added of "
        f"{mem['paragraphs']:,} paragraphs; {mem['seconds']:.1f} s ({mem['chunks_per_s']:,.0f} chunks/s).",
        "/proc/PID/status is sampled every 20 ms while the upsert runs: VmRSS, and its parts RssAnon (the",
        "heap) and RssFile (mapped files: the vector store's SQLite file is memory-mapped, and the kernel",
        "may drop those pages); VmRSS's peak is the larger of the samples and VmHWM. A small upsert goes",
        "first, so that one-time costs (imports, threads, the store) are not counted as the big file's.",
        "",
    ]
    parts = [("VmRSS", mem["rss_mib"]), ("RssAnon", mem["anon_mib"]), ("RssFile", mem["mapped_mib"])]
    out += _table(
        ["MiB", "idle, fresh server", "before the big upsert", "peak during it", "after it"],
        [[name, *(f"{v[k]:.1f}" for k in ("idle", "before", "peak", "after"))] for name, v in parts],
    )
    course = ", ".join(f"{share} {rss:.0f} / {anon:.0f}" for share, (rss, anon) in mem["course_mib"].items())
    answer = mem["answer_bytes"] / 2**20
    out += [
        "",
        f"Peak growth: {mem['growth_mib']:.1f} MiB of VmRSS ({mem['growth_vs_file']:.2f}{X} the file's "
        f"{mem['file_mib']:.1f} MiB), {mem['anon_growth_mib']:.1f} MiB of it heap. Highest VmRSS / RssAnon",
        f"sample by that share of the upsert's time: {course} MiB. The route's answer was {answer:.1f} MiB.",
    ]
    if not mem["pass"]:
        out += [
            "",
            "**Missed**: memory still grows with the file. The Text File loader holds the whole text (as",
            "LangChain's TextLoader does, one document per file; the bytes too while they are decoded), and",
            "the splitter's chunks of it, before the batches are embedded. The answer, Flowise's, whose",
            f"`addedDocs` lists every chunk ({answer:.0f} MiB of JSON here), is no longer held: it is",
            "written to a temporary file as the chunks are added and streamed from there. The mapped",
            "SQLite file adds to RssFile as the store grows (file pages, which the kernel may drop).",
        ]
    out += ["", "### Another chatflow's streams while a local ingest runs", ""]
    if "ttft_ratio" in load:
        ingest = load["ingest"]
        out += [
            "chatOpenAI → llmChain at the stub on the same server: per round, one 20-token answer (its",
            f"first token) and one 2000-token answer (its whole time). {plan['rounds']} rounds alone before "
            f"and {plan['rounds']} after, {load['ttft_during_ms']['runs']} while the upsert route ingested "
            f"{ingest['chunks']} chunks with localEmbeddings ({ingest['seconds']:.1f} s, "
            f"{ingest['chunks_per_s']:.1f} chunks/s; the ingest was "
            + (
                "still running after the last round)."
                if load["ingest_outlasted_rounds"]
                else "OVER before the last round)."
            )
            + " Milliseconds, median / p95:",
            "",
        ]
        out += _table(
            ["", "alone", "during the ingest", "ratio of medians"],
            [
                [
                    "first token, 20 tokens",
                    _ms(load["ttft_alone_ms"]),
                    _ms(load["ttft_during_ms"]),
                    f"{load['ttft_ratio']:.2f}{X}",
                ],
                [
                    "2000-token answer",
                    _ms(load["long_alone_ms"]),
                    _ms(load["long_during_ms"]),
                    f"{load['long_ratio']:.2f}{X}",
                ],
            ],
        )
        if load["long_ratio"] < 1 or load["ttft_ratio"] < 1:
            out += [
                "",
                "A ratio under 1: here the answers alone were the slower ones (2000 tokens alone: "
                f"{load['long_alone_ms']['min']:.1f}",
                f"to {load['long_alone_ms']['max']:.1f} ms). The ingest did not slow them measurably; the",
                "machine's own variation between runs is larger than its effect.",
            ]
        if not load["pass"]:
            out += [
                "",
                "**Missed**: the streams slowed by more than the target allows" + _noise([load]) + ".",
            ]
    else:
        out.append(str(load.get("error")))
    ttft = first["ttft_ms"]
    small = retrieval["sizes"][str(plan["corpus_chunks"])]
    out += [
        "",
        "### First token with retrieval",
        "",
        f"Three chatflows on one server, ChatOpenAI at the stub, 20-token answers, {plan['rounds']} rounds,",
        "each chatflow first, second and third in turn; every request is the first question of a new",
        "chat (a new `chatId`), so the retrieval chain makes no rephrase call (with earlier turns it asks",
        "the model once more before retrieving, which this does not measure). The questions are the",
        f"labelled queries. RAG = the chain above over the {plan['corpus_chunks']}-chunk corpus; the same",
        "model in a Conversation Chain with Buffer Memory (the same memory, no retrieval); and in an LLM",
        "Chain (no memory). "
        + (
            "The RAG answers carried `sourceDocuments`."
            if first["sources_sent"]
            else "The RAG answers carried NO `sourceDocuments`."
        ),
        "",
    ]
    out += _table(
        ["chatflow", "first token ms, median / p95", "added by retrieval (medians)"],
        [
            ["Conversational Retrieval QA Chain", _ms(ttft["rag"]), NONE],
            [
                "Conversation Chain + Buffer Memory",
                _ms(ttft["conversation"]),
                f"{verdicts['rag_added_ms']['conversation']:.2f}",
            ],
            ["LLM Chain", _ms(ttft["llm"]), f"{verdicts['rag_added_ms']['llm']:.2f}"],
        ],
    )
    out += [
        "",
        f"Allowed: the question's embedding ({small['embed_ms']['median']:.2f} ms) + the search of "
        f"{plan['corpus_chunks']} chunks ({small['search_ms']['median']:.2f} ms), medians from the retrieval "
        f"figures below, + 5 ms = {verdicts['rag_budget_ms']:.2f} ms. Against the LLM Chain (which has no "
        "memory to read) the target is " + ("met" if verdicts["rag_pass_vs_llm"] else "MISSED") + " too.",
        *(
            []
            if verdicts["rag_pass"]
            else [
                "",
                "**Missed**: retrieval added more than its embedding and search" + _noise([first]) + ".",
            ]
        ),
        "",
        "### Retrieval: question embedding and search",
        "",
        f"`.venv/bin/python bench/rag_parts.py retrieval DIR {retrieval['queries']} SIZES...` in a fresh",
        "process: an `embeddedVectorStore` node with `localEmbeddings`, as a chatflow builds them; each",
        "namespace is filled through the store's backend with synthetic unit vectors of "
        f"{retrieval['dimension']} dimensions (bench_vectors.py's). Per question: `embed_query`, then the",
        f"store's search (top {retrieval['k']}), timed apart; then the node's own `search` (embedding and",
        f"search again), timed whole. {retrieval['queries']} questions (the labelled queries, in turn) per",
        "size; milliseconds, median / p95:",
        "",
    ]
    out += _table(
        ["chunks", "fill s", "embed", "search", "node search (total)"],
        [
            [
                f"{int(size):,}",
                f"{f['fill_s']:.2f}",
                _ms(f["embed_ms"]),
                _ms(f["search_ms"]),
                _ms(f["total_ms"]),
            ]
            for size, f in retrieval["sizes"].items()
        ],
    )
    if not verdicts["search_pass"] and verdicts["search_pass"] is not None:
        out += ["", f"**Missed**: the search at 100,000 chunks took {verdicts['search_100k_ms']:.2f} ms"]
        out[-1] += _noise([retrieval]) + "."
    return out


def _noisy(phase: dict[str, Any]) -> float | None:
    """Other processes' share of the machine during `phase`, when enough to skew it."""
    from bench_report import NOISY_CORE_SECONDS, NOISY_SHARE  # imported by it: no cycle at load time

    other = phase.get("other_cpu") or {}
    share = float(other.get("share_of_machine", 0.0))
    return share if share > NOISY_SHARE and other.get("core_seconds", 0.0) >= NOISY_CORE_SECONDS else None


def _noise(phases: list[dict[str, Any]]) -> str:
    shares = [share for share in map(_noisy, phases) if share is not None]
    if not shares:
        return " on a quiet machine (other processes took under 5% of it), so this is Streamwise's own"
    return (
        f"; other processes took up to {max(shares):.0%} of the machine meanwhile, so rerun it on a quiet"
        " machine (`--wait-quiet 120`) before reading it as Streamwise's own"
    )
