"""A local transformers checkpoint as the teacher: batched generation, on the GPU when there is one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from phi1.errors import Phi1Error
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
        if not (Path(model) / "config.json").exists():
            raise Phi1Error(f"teacher.model: {model} is not a local transformers checkpoint (no config.json)")
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
            tok = AutoTokenizer.from_pretrained(self.model, local_files_only=True)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            lm = AutoModelForCausalLM.from_pretrained(self.model, local_files_only=True, dtype=precision.dtype())
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

    def _generate(self, requests: list[Request]) -> list[Response]:
        import torch

        tok, lm, device = self._load()
        texts = [self._prompt_text(tok, r) for r in requests]
        p = requests[0].params
        start = time.perf_counter()
        enc = tok(texts, return_tensors="pt", padding=True).to(device)
        kwargs: dict = {"max_new_tokens": p.max_tokens, "pad_token_id": tok.pad_token_id}
        if p.temperature > 0:
            kwargs.update(do_sample=True, temperature=p.temperature, top_p=p.top_p)
        else:
            kwargs.update(do_sample=False)
        if p.seed is not None:
            torch.manual_seed(p.seed + requests[0].sample)
        with torch.inference_mode():
            out = lm.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :]
        latency = time.perf_counter() - start
        responses = []
        for i, request in enumerate(requests):
            ids = [t for t in new[i].tolist() if t != tok.pad_token_id]
            text = tok.decode(ids, skip_special_tokens=True)
            finish = "length" if len(ids) >= p.max_tokens else "stop"
            for s in request.params.stop:
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            prompt_len = int(enc["attention_mask"][i].sum())
            responses.append(Response(request, text, finish, prompt_len, len(ids), latency, model=self.model))
        return responses

    async def _complete_many(self, requests: list[Request]) -> list[Response]:
        # Requests with different sampling parameters cannot share a generate() call.
        groups: dict[object, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.params, []).append(i)
        results: list[Response | None] = [None] * len(requests)
        for indices in groups.values():
            batch = [requests[i] for i in indices]
            for i, response in zip(indices, await asyncio.to_thread(self._generate, batch), strict=True):
                results[i] = response
        return [r for r in results if r is not None]

    async def _complete(self, request: Request) -> Response:
        return (await self._complete_many([request]))[0]
