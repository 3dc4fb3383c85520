"""A local transformers checkpoint as the teacher: batched generation, on the GPU when there is one."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable

from phi1.errors import Phi1Error
from phi1.gguf import as_checkpoint
from phi1.precision import resolve
from phi1.teacher.base import Request, Response, Teacher


class HFTeacher(Teacher):
    backend = "hf"

    def __init__(
        self,
        model: str,
        cache=None,
        batch_size: int = 8,
        device: str | None = None,
        price_prompt_per_m: float | None = None,
        price_completion_per_m: float | None = None,
    ) -> None:
        # One batch at a time: the model is the bottleneck and holds the device.
        super().__init__(model, cache, 1, price_prompt_per_m, price_completion_per_m)
        self._path = as_checkpoint(model, "teacher.model")  # a .gguf file: its converted checkpoint
        if not (self._path / "config.json").exists():
            raise Phi1Error(
                f"teacher.model: {model} is not a local transformers checkpoint (no config.json) or .gguf file"
            )
        self._batch = batch_size
        self._device = device
        self._loaded: tuple | None = None

    def batch_size(self) -> int:
        return self._batch

    def describe(self) -> dict:
        return {**super().describe(), "precision": resolve("auto", self._device).as_dict()}

    def _load(self) -> tuple:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            precision = resolve("auto", self._device)
            device = precision.device
            tok = AutoTokenizer.from_pretrained(self._path, local_files_only=True)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            lm = AutoModelForCausalLM.from_pretrained(self._path, local_files_only=True, dtype=precision.dtype())
            lm = lm.to(device)
            lm.eval()
            self._loaded = (tok, lm, device)
        return self._loaded

    def _prompt_text(self, tok, request: Request) -> str:
        if request.prompt is not None:
            return request.prompt
        messages = [{"role": role, "content": content} for role, content in request.messages]
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(content for _, content in request.messages) + "\n\n"

    def _generate(self, requests: list[Request], emit: Callable[[int, Response], None]) -> None:
        """One generate() call for requests of the same sampling settings. Each row ends at its own token
        limit, stop sequence or end of sequence, and is handed to `emit` at that step, with its own latency:
        a short answer does not wait for the batch's longest (HF then pads the row until all are done)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok, lm, device = self._load()
        texts = [self._prompt_text(tok, r) for r in requests]
        p = requests[0].params
        start = time.perf_counter()
        enc = tok(texts, return_tensors="pt", padding=True).to(device)
        width = enc["input_ids"].shape[1]
        eos = tok.eos_token_id
        done = [False] * len(requests)

        def finish(i: int, ids: list[int], reason: str) -> None:
            text = tok.decode(ids, skip_special_tokens=True)
            for s in requests[i].params.stop:
                if s in text:
                    text, reason = text[: text.index(s)], "stop"
            prompt_len = int(enc["attention_mask"][i].sum())
            latency = time.perf_counter() - start
            done[i] = True
            emit(i, Response(requests[i], text, reason, prompt_len, len(ids), latency, model=self.model))

        class Rows(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: object) -> torch.Tensor:
                for i, r in enumerate(requests):
                    if done[i]:
                        continue
                    ids = input_ids[i, width:].tolist()
                    if eos is not None and ids and ids[-1] == eos:
                        finish(i, ids[:-1], "stop")
                    elif len(ids) >= r.params.max_tokens:
                        finish(i, ids, "length")
                    elif r.params.stop and any(s in tok.decode(ids[-32:], skip_special_tokens=True)
                                               for s in r.params.stop):  # fmt: skip
                        finish(i, ids, "stop")
                return torch.tensor(done, device=input_ids.device)

        kwargs: dict = {"max_new_tokens": max(r.params.max_tokens for r in requests), "pad_token_id": tok.pad_token_id}
        if p.temperature > 0:
            kwargs.update(do_sample=True, temperature=p.temperature, top_p=p.top_p)
        else:
            kwargs.update(do_sample=False)
        # Seeded from the batch's requests when no seed was asked: a run, a rerun and another executor (the
        # same batches on a Ray replica) sample the same answers.
        torch.manual_seed(p.seed + requests[0].sample if p.seed is not None else _batch_seed(requests, self.model))
        with torch.inference_mode():
            out = lm.generate(**enc, **kwargs, stopping_criteria=StoppingCriteriaList([Rows()]))
        for i in range(len(requests)):  # ended by generate itself (its own end-of-sequence check)
            if not done[i]:
                finish(i, [t for t in out[i, width:].tolist() if t not in (tok.pad_token_id, eos)], "stop")

    def answer_batch(self, requests: list[Request]) -> list[tuple[int, Response]]:
        """(index, response) for every request of one batch, handed back together: what a replica of the
        teacher on a cluster (`phi1.teacher.hf_replicas`) answers a batch with."""
        answers: list[tuple[int, Response]] = []
        for indices in sampling_groups(requests):
            self._generate([requests[i] for i in indices], lambda k, r, ix=indices: answers.append((ix[k], r)))
        return answers

    async def _answers(self, requests: list[Request]) -> AsyncIterator[tuple[int, Response]]:
        for indices in sampling_groups(requests):
            async for k, response in self._group_answers([requests[i] for i in indices]):
                yield indices[k], response

    async def _group_answers(self, requests: list[Request]) -> AsyncIterator[tuple[int, Response]]:
        """One generate() call in a worker thread; each answer is passed on the moment its row ends."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Queue[tuple[int, Response] | None] = asyncio.Queue()

        def emit(k: int, response: Response) -> None:
            loop.call_soon_threadsafe(ready.put_nowait, (k, response))

        async def run() -> None:
            try:
                await asyncio.to_thread(self._generate, requests, emit)
            finally:
                loop.call_soon_threadsafe(ready.put_nowait, None)

        task = asyncio.ensure_future(run())
        while (item := await ready.get()) is not None:
            yield item
        await task  # a failure of generate() itself surfaces here

    async def _complete(self, request: Request) -> Response:
        [(_, response)] = [answer async for answer in self._answers([request])]
        return response


def sampling_groups(requests: list[Request]) -> list[list[int]]:
    """The requests' indices by sampling settings: requests of different settings cannot share a generate()
    call; token limits and stop sequences can (each row ends at its own)."""
    groups: dict[object, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((r.params.temperature, r.params.top_p, r.params.seed), []).append(i)
    return list(groups.values())


def _batch_seed(requests: list[Request], model: str) -> int:
    keys = "".join(r.key(HFTeacher.backend, model) for r in requests)
    return int.from_bytes(hashlib.sha256(keys.encode()).digest()[:8], "little") >> 1
