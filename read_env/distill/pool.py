"""Teacher-data pool: the teacher's answers to the prompt streams, generated once and shared by every episode.

A pool answers the prompts of :class:`~read_env.distill.prompts.PromptStreams` (``DistillerConfig.prompt_streams``):
stream elements are the same for every seed and allocation, so the answers are generated once (:func:`build_pool`,
``read-env pool build``) and reused by every episode, seed, agent, profiling run and machine that has the folder.

Folder ``PATH``:

* ``card.json``: the **key** (teacher fingerprint, prompt-source hash, sampling: :func:`pool_key`), the prompt
  source, the stream elements answered per capability and bucket (``covered``), the rows and token counts, one
  record per build (time, prompts, tokens, seconds, tokens/s, engine), and what episodes' fallbacks added
  (``episodes``: answers, tokens, seconds).
* ``shards/NNNNNN-*/``: Hugging Face ``datasets`` datasets (Arrow, ``save_to_disk``), one per build or flush, one
  row per distinct prompt: ``capability``, ``bucket`` (``None`` for answers an episode's fallback added),
  ``prompt``, ``prompt_sha256`` (of the exact text), ``token_ids`` (the teacher's tokens, ``None`` from a server),
  ``text``, ``finished``, ``generated`` (tokens).

Every answer is generated with the pool's ``max_new_tokens`` cap, the largest any step asks for; a step asking
for ``cap`` tokens gets the answer cut at ``cap`` (:func:`cut`), which is the answer generated with that cap under
greedy decoding (and distributed as one under sampling), and the ledger charges its length exactly as if it had
been generated. A build on an existing pool adds the missing answers; one with another key is refused
(:class:`PoolError`). Writers hold ``PATH/.lock``; a shard appears whole or not at all.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Sequence

from .config import DistillerConfig
from .engines import Answer, TeacherEngineError
from .generation import SamplingConfig, chat_text
from .prompts import BUCKETS, CAPABILITIES, STREAM_SEED, PromptStreams
from .safe_files import replace_file

POOL_FORMAT = 1
CARD = "card.json"
SHARD_ROWS = 4096  # a build writes a shard every this many answers (an interrupted build keeps them)


class PoolError(ValueError):
    """A pool folder that cannot serve this configuration (another key, not a pool, missing)."""


class PoolMissError(RuntimeError):
    """The pool has no answer to ``texts`` (and no fallback engine generates them); ``where`` names their capability."""

    def __init__(self, pool: Path, texts: Sequence[str], where: str = ""):
        super().__init__(f"teacher pool {pool} has no answer to {len(texts)} prompt(s){where}: extend it "
                         f"(`read-env pool build {pool} --per-bucket N` with a larger N) or set pool_fallback=True to generate them")
        self.pool, self.texts = pool, list(texts)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sampling_key(config: DistillerConfig) -> dict[str, Any]:
    """The decoding settings a pool's answers were generated with."""
    return {"max_new_tokens": config.max_new_tokens, "temperature": config.temperature, "top_p": config.top_p}


def teacher_fingerprint(teacher: str) -> str:
    """``name:sha256[:16]`` of a teacher folder's config, tokenizer files and weight files (names, sizes, first MiB);
    a name that is not a folder (a served model) is its own fingerprint."""
    folder = Path(teacher)
    if not folder.is_dir():
        return teacher
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json" and path.name != "read_env_tiny.json":
            digest.update(path.name.encode() + path.read_bytes())
        elif path.suffix in (".safetensors", ".bin"):
            with path.open("rb") as handle:
                digest.update(f"{path.name}:{path.stat().st_size}".encode() + handle.read(2**20))
    return f"{folder.name}:{digest.hexdigest()[:16]}"


def streams_for(config: DistillerConfig) -> PromptStreams:
    """The prompt streams of every capability under ``config``'s probe, evaluation and bank settings."""
    from .distiller import sampler_options

    return PromptStreams(CAPABILITIES, **sampler_options(CAPABILITIES, config))


def prompt_source(config: DistillerConfig, streams: PromptStreams | None = None) -> dict[str, Any]:
    """What the streams are drawn from (``streams``: :func:`streams_for` ``config``, built when not given), and its
    ``hash`` (templates, stream seed, forbidden items, banks)."""
    streams = streams or streams_for(config)
    digest = hashlib.sha256(resources.files("read_env.distill").joinpath("data/templates.json").read_bytes())
    digest.update(json.dumps([STREAM_SEED, config.bank_share, sorted(streams.forbidden),
                              {c: [p.text for p in items] for c, items in sorted(streams.banks.items())}]).encode())
    if streams.role_split:  # item_source="full_splits" (absent from legacy keys, which stay as they were)
        digest.update(json.dumps(sorted(streams.role_split)).encode())
    return {"kind": "streams", "stream_seed": STREAM_SEED, "use_banks": config.use_banks, "bank_share": config.bank_share,
            "bank_items": {c: len(items) for c, items in streams.banks.items()}, "forbidden_items": len(streams.forbidden),
            "hash": digest.hexdigest()[:16]}


def pool_key(config: DistillerConfig, teacher: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """(teacher, prompt hash, sampling): the answers a pool holds; ``teacher`` is the resolved teacher folder or name,
    ``source`` :func:`prompt_source` (computed when not given)."""
    source = source or prompt_source(config)
    return {"teacher": teacher_fingerprint(teacher), "prompts": source["hash"], "sampling": sampling_key(config)}


def auto_path(config: DistillerConfig, key: dict[str, Any]) -> Path:
    """Where ``teacher_pool="auto"`` keeps the pool of ``key``: beside the embedded models in the cache."""
    from .assets import cache_dir

    return cache_dir(config.cache) / "pools" / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cut(row: dict[str, Any], cap: int, tokenizer) -> Answer:
    """The pooled answer ``row`` as generated with at most ``cap`` >= 1 new tokens (``tokenizer`` decodes a cut)."""
    if row["generated"] <= cap:
        return Answer(row["text"], row["generated"], row["finished"], row["token_ids"])
    if row["token_ids"] is None or tokenizer is None:
        raise TeacherEngineError("this pool's answers carry no token ids (built from a server) and cannot be cut at a step's cap")
    ids = row["token_ids"][:cap]
    return Answer(tokenizer.decode(ids, skip_special_tokens=True), cap, False, ids)


class TeacherPool:
    """A pool folder opened for ``key`` (see the module docstring): lookups by prompt text, additions, flushes."""

    def __init__(self, path: str | Path, key: dict[str, Any], source: dict[str, Any] | None = None, create: bool = False):
        self.path = Path(path).expanduser()
        card_file = self.path / CARD
        if card_file.is_file():
            self.card = json.loads(card_file.read_text())
            if self.card.get("format") != POOL_FORMAT:
                raise PoolError(f"{card_file} is not a teacher pool card of format {POOL_FORMAT}")
            differ = [name for name in key if self.card["key"].get(name) != key[name]]
            if differ:
                raise PoolError(f"teacher pool {self.path} holds answers of another " + ", ".join(
                    f"{name} ({self.card['key'].get(name)} there, {key[name]} here)" for name in differ)
                    + "; use another folder (or teacher_pool='auto')")
        elif create:
            if self.path.exists() and any(self.path.iterdir()):
                raise PoolError(f"{self.path} is not empty and holds no {CARD}: not a teacher pool")
            self.card = {"format": POOL_FORMAT, "key": key, "prompt_source": source, "covered": {}, "rows": 0,
                         "generated_tokens": 0, "builds": []}
        else:
            raise PoolError(f"no teacher pool at {self.path} ({CARD} missing): build one with `read-env pool build {self.path}`")
        self.shards: list[Any] = []
        self.index: dict[str, tuple[int, int]] = {}  # prompt sha256 -> (shard, row)
        self.pending: list[dict[str, Any]] = []
        self._load()

    def refresh(self) -> None:
        """Load the shards other processes added since."""
        self._load()

    def _load(self) -> None:
        from datasets import load_from_disk

        folders = sorted(p for p in (self.path / "shards").glob("*") if p.is_dir() and not p.name.endswith(".tmp"))
        for folder in folders[len(self.shards):]:
            shard = load_from_disk(str(folder))
            number = len(self.shards)
            self.shards.append(shard)
            for row, digest in enumerate(shard["prompt_sha256"]):
                self.index.setdefault(digest, (number, row))

    def __len__(self) -> int:
        return len(self.index) + len(self.pending)

    def __contains__(self, text: str) -> bool:
        return sha256(text) in self.index

    def row(self, text: str) -> dict[str, Any] | None:
        """The stored answer to ``text`` (``None`` when absent)."""
        where = self.index.get(sha256(text))
        if where is None:
            return None
        if where[0] < 0:
            return self.pending[where[1]]
        return self.shards[where[0]][where[1]]

    def add(self, texts: Sequence[str], answers: Sequence[Answer], labels: Sequence[tuple[str, str]] | None = None) -> None:
        """Keep ``answers`` to prompt ``texts`` (of (capability, bucket) ``labels`` when known) until :meth:`flush`."""
        for text, answer, (capability, bucket) in zip(texts, answers, labels or [(None, None)] * len(texts)):
            digest = sha256(text)
            if digest in self.index:
                continue
            self.index[digest] = (-1, len(self.pending))
            self.pending.append({"capability": capability, "bucket": bucket, "prompt": text, "prompt_sha256": digest,
                                 "token_ids": answer.token_ids, "text": answer.text, "finished": answer.finished,
                                 "generated": answer.generated})

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def flush(self, build: dict[str, Any] | None = None, covered: dict[str, dict[str, int]] | None = None, seconds: float = 0.0) -> None:
        """Write the pending answers as a new shard and update the card (``build``: a record to add; ``covered``:
        stream elements now answered, per capability and bucket; without ``build``, the answers and their
        generation ``seconds`` are added to the card's ``"episodes"`` totals: what episodes' fallbacks generated)."""
        from datasets import Dataset, Features, Sequence as Seq, Value
        from datasets import utils as datasets_progress

        if not self.pending and build is None:
            return
        features = Features({"capability": Value("string"), "bucket": Value("string"), "prompt": Value("string"),
                             "prompt_sha256": Value("string"), "token_ids": Seq(Value("int32")), "text": Value("string"),
                             "finished": Value("bool"), "generated": Value("int32")})
        with self._locked():
            card_file = self.path / CARD
            if card_file.is_file():  # another process may have flushed since
                on_disk = json.loads(card_file.read_text())
                self.card.update({k: on_disk[k] for k in ("covered", "rows", "generated_tokens", "builds", "episodes") if k in on_disk})
            self._load()
            rows = [row for row in self.pending if self.index.get(row["prompt_sha256"], (-1,))[0] < 0]
            if rows:
                final = self.path / "shards" / f"{len(self.shards):06d}-{os.getpid()}-{time.time_ns() % 10**9:09d}"
                tmp = final.with_name(final.name + ".tmp")
                quiet = datasets_progress.are_progress_bars_disabled()
                datasets_progress.disable_progress_bars()
                try:
                    Dataset.from_list(rows, features=features).save_to_disk(str(tmp))
                finally:
                    if not quiet:
                        datasets_progress.enable_progress_bars()
                os.replace(tmp, final)
                self.card["rows"] += len(rows)
                self.card["generated_tokens"] += sum(row["generated"] for row in rows)
            for capability, buckets in (covered or {}).items():
                for bucket, count in buckets.items():
                    mine = self.card["covered"].setdefault(capability, {})
                    mine[bucket] = max(mine.get(bucket, 0), count)
            if build is not None:
                self.card["builds"].append(build)
            elif rows:
                grown = self.card.setdefault("episodes", {"answers": 0, "generated_tokens": 0, "seconds": 0.0})
                grown.update(answers=grown["answers"] + len(rows), seconds=round(grown["seconds"] + seconds, 3),
                             generated_tokens=grown["generated_tokens"] + sum(r["generated"] for r in rows))
            replace_file(card_file, (json.dumps(self.card, indent=1) + "\n").encode())
            self.pending = []
            self.index = {digest: where for digest, where in self.index.items() if where[0] >= 0}
            self._load()


class PoolEngine:
    """A teacher engine answering from ``pool`` (cut at each cap); ``fallback`` (an engine, or ``None`` to raise
    :class:`PoolMissError`) generates what the pool lacks, with the pool's cap, and adds it to the pool."""

    name = "pool"

    def __init__(self, pool: TeacherPool, tokenizer, fallback=None):
        self.pool, self.tokenizer, self.fallback = pool, tokenizer, fallback
        self.max_new_tokens = int(pool.card["key"]["sampling"]["max_new_tokens"])
        self.seconds = 0.0  # spent generating answers not yet flushed

    def generate(self, prompts: Sequence[str], caps: Sequence[int], sampling: SamplingConfig) -> list[Answer]:
        """Answers to user-turn ``prompts`` with per-prompt caps (<= the pool's ``max_new_tokens``)."""
        missing = list(dict.fromkeys(text for text in prompts if text not in self.pool))
        if missing:  # another process may have added them since
            self.pool.refresh()
            missing = [text for text in missing if text not in self.pool]
        if missing and self.fallback is None:
            raise PoolMissError(self.pool.path, missing)
        if missing:
            started = time.perf_counter()
            self.pool.add(missing, self.fallback.generate(missing, [self.max_new_tokens] * len(missing), sampling))
            self.seconds += time.perf_counter() - started
        return [cut(self.pool.row(text), cap, self.tokenizer) for text, cap in zip(prompts, caps)]

    def flush(self) -> None:
        """Store the answers the fallback generated (:meth:`TeacherPool.flush`)."""
        self.pool.flush(seconds=self.seconds)
        self.seconds = 0.0


def check_pool_folder(config: DistillerConfig) -> None:
    """Raise :class:`PoolError` at once when ``config.teacher_pool`` is a folder without a pool and nothing would create one."""
    folder = config.teacher_pool
    if folder not in (None, "auto") and not config.pool_fallback and not (Path(folder).expanduser() / CARD).is_file():
        raise PoolError(f"no teacher pool at teacher_pool={config.teacher_pool} ({CARD} missing): build one with "
                        f"`read-env pool build {config.teacher_pool}`, or set pool_fallback=True to grow it during the episodes")


def pool_engine(config: DistillerConfig, models) -> PoolEngine:
    """The engine of ``config.teacher_pool`` (a folder, or ``"auto"``: :func:`auto_path`, created on first use) for
    :func:`~read_env.distill.models.load_models` output ``models``, whose engine is the fallback when
    ``config.pool_fallback`` or ``"auto"`` (then a missing folder is created)."""
    auto = config.teacher_pool == "auto"
    settings = json.dumps(["pool key", config.to_dict()], sort_keys=True)
    if settings not in models.opened:
        source = prompt_source(config)
        models.opened[settings] = source, pool_key(config, models.teacher_path, source)
    source, key = models.opened[settings]
    path = auto_path(config, key) if auto else Path(config.teacher_pool).expanduser().resolve()
    name = json.dumps([str(path), key], sort_keys=True)
    if name not in models.opened:  # opened once per loaded models: the episodes, agents and profiling runs of a process share it
        models.opened[name] = TeacherPool(path, key, source, create=auto or config.pool_fallback)
    return PoolEngine(models.opened[name], models.teacher_tokenizer, models.engine if auto or config.pool_fallback else None)


def build_pool(path: str | Path, config: DistillerConfig, capabilities: Sequence[str] = CAPABILITIES, per_bucket: int = 64,
               device: str = "auto", batch_size: int | None = None, progress: bool = True, models=None) -> dict[str, Any]:
    """Answer elements ``0 .. per_bucket - 1`` of every (capability, bucket) stream into the pool at ``path``
    (created, or extended with what it lacks); return its card.

    Every capability's prompts are generated together, sorted by length, ``batch_size`` (default
    ``config.gen_batch_size``) per ``engine.generate`` call, each with the cap ``config.max_new_tokens``.
    ``models``: :func:`~read_env.distill.models.load_models` output to reuse (default: loaded here on ``device``).
    """
    from tqdm import tqdm

    from .assets import resolve_model_path
    from .models import load_models

    if per_bucket < 1:
        raise ValueError(f"per_bucket must be >= 1, got {per_bucket}")
    teacher = models.teacher_path if models is not None else resolve_model_path(config.teacher, "teacher", config.cache)
    streams = streams_for(config)
    source = prompt_source(config, streams)
    pool = TeacherPool(path, pool_key(config, teacher, source), source, create=True)  # refuses another key before loading
    models = models or load_models(config, device)
    todo: dict[str, Any] = {}
    for capability in capabilities:
        for bucket in BUCKETS:
            for index in range(per_bucket):
                prompt = streams.element(capability, bucket, index)
                if prompt.text not in pool:
                    todo.setdefault(prompt.text, prompt)
    prompts = sorted(todo.values(), key=lambda p: len(p.text))
    sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p, config.gen_batch_size)
    size = batch_size or config.gen_batch_size
    started, generated, prompt_tokens = time.perf_counter(), 0, 0
    with tqdm(total=len(prompts), desc="teacher pool", unit="answer", disable=not progress) as bar:
        for first in range(0, len(prompts), size):
            batch = prompts[first:first + size]
            answers = models.engine.generate([p.text for p in batch], [config.max_new_tokens] * len(batch), sampling)
            pool.add([p.text for p in batch], answers, [(p.capability, p.bucket) for p in batch])
            generated += sum(a.generated for a in answers)
            if models.teacher_tokenizer is not None:
                tokenizer = models.teacher_tokenizer
                prompt_tokens += sum(len(tokenizer(chat_text(tokenizer, p.text), add_special_tokens=False)["input_ids"]) for p in batch)
            bar.update(len(batch))
            if len(pool.pending) >= SHARD_ROWS:
                pool.flush()
    seconds = time.perf_counter() - started
    build = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "per_bucket": per_bucket, "capabilities": list(capabilities),
             "prompts": len(prompts), "generated_tokens": generated, "prompt_tokens": prompt_tokens if models.teacher_tokenizer else None,
             "seconds": round(seconds, 3), "tokens_per_s": round(generated / seconds, 1) if seconds > 0 else None,
             "engine": models.engine.name, "device": str(models.device), "batch_size": size}
    pool.flush(build, {c: {b: per_bucket for b in BUCKETS} for c in capabilities})
    return pool.card

