"""Any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, TGI, Ollama, llama.cpp server) through the official
async client, with phi1's own retry loop: the client's retries stop short of two faults that matter in
long synthesis runs (a 200 whose body is malformed, and a 200 without `choices`)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import openai
from aiolimiter import AsyncLimiter

from phi1.errors import Phi1Error
from phi1.teacher.adaptive import AdaptiveLimit
from phi1.teacher.base import Request, Response, Teacher, error_response
from phi1.teacher.cache import Cache

_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAITeacher(Teacher):
    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key_env: str = "OPENAI_API_KEY",
        cache: Cache | None = None,
        concurrency: int = 16,
        max_retries: int = 6,
        timeout_s: float = 120.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 60.0,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        price_prompt_per_m: float | None = None,
        price_completion_per_m: float | None = None,
    ) -> None:
        super().__init__(model, cache, concurrency, price_prompt_per_m, price_completion_per_m)
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        # One limiter each for requests and tokens, for the teacher's whole life (its event loop is too):
        # a run's many generate() calls share one budget.
        self._requests = AsyncLimiter(requests_per_minute, 60) if requests_per_minute else None
        self._tokens = AsyncLimiter(tokens_per_minute, 60) if tokens_per_minute else None
        self._client: openai.AsyncOpenAI | None = None
        # In flight: what the server shows it answers at once (x2 + 1), never more than `concurrency`.
        self._inflight = AdaptiveLimit(concurrency)
        if base_url is None and not os.environ.get(api_key_env):
            raise Phi1Error(
                f"teacher.backend=openai needs teacher.base_url, or the API key in ${api_key_env} for api.openai.com"
            )

    def _api_key(self) -> str:
        # Local servers (vLLM, llama.cpp) accept any key; the key is read here and never stored.
        return os.environ.get(self.api_key_env) or "EMPTY"

    def _client_for_loop(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key(),
                max_retries=0,  # retries are ours: see _complete
                timeout=self.timeout_s,
                http_client=_http_client(self.concurrency),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _complete(self, request: Request) -> Response:
        client = self._client_for_loop()
        estimate = len(request.text) // 4 + request.params.max_tokens
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if self._requests is not None:
                await self._requests.acquire()
            if self._tokens is not None:
                await self._tokens.acquire(min(estimate, self._tokens.max_rate))
            await self._inflight.acquire()
            start = time.perf_counter()
            answered: tuple[float, int] | None = None
            try:
                text, finish, pt, ct, model = await self._call(client, request)
                answered = (time.perf_counter() - start, ct or len(text) // 4)
                return Response(request, text, finish, pt, ct, answered[0], model=model)
            except Retryable as exc:
                last, retry_after = str(exc), exc.retry_after
            except openai.APIStatusError as exc:  # 400, 401, 403, 404, 422: retrying will not help
                return error_response(request, f"HTTP {exc.status_code}: {_message(exc)}", self.model)
            finally:
                await self._inflight.release(*(answered or (None, 0)))
            if attempt == self.max_retries:
                break
            await asyncio.sleep(self._delay(attempt, retry_after))  # holding no slot
        return error_response(request, f"gave up after {self.max_retries + 1} attempts: {last}", self.model)

    def describe(self) -> dict:
        measured = self._inflight.parallelism
        return {**super().describe(), "server_parallelism": round(measured, 2) if measured is not None else None}

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s) + random.uniform(0, 0.1)
        # Exponential backoff with full jitter.
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))

    def _body(self, request: Request) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body of a request."""
        p = request.params
        kwargs: dict[str, Any] = {
            "model": self.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
        }
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if p.seed is not None:
            kwargs["seed"] = p.seed + request.sample
        if request.prompt is not None:
            return "/completions", {"prompt": request.prompt, **kwargs}
        messages = [{"role": role, "content": content} for role, content in request.messages]
        return "/chat/completions", {"messages": messages, **kwargs}

    async def _call(self, client: openai.AsyncOpenAI, request: Request) -> tuple[str, str, int, int, str]:
        path, body = self._body(request)
        # The client's low-level post() keeps its auth, headers, errors and connection pool but skips the
        # typed request transform and response models: at 64 requests in flight those cost ~1 ms each.
        try:
            resp = await client.post(path, cast_to=object, body=body)
        except openai.RateLimitError as exc:
            raise Retryable(f"HTTP 429: {_message(exc)}", _retry_after(exc.response)) from None
        except openai.APIStatusError as exc:
            if exc.status_code in _RETRYABLE_STATUS:
                raise Retryable(f"HTTP {exc.status_code}: {_message(exc)}", _retry_after(exc.response)) from None
            raise
        except openai.APITimeoutError as exc:
            cause = str(exc.__cause__ or "")
            if "connect" in cause.lower():  # the aiohttp transport reports a refused connection as a timeout
                raise Retryable(f"connection failed: {cause}") from None
            raise Retryable(f"no answer within {self.timeout_s:g}s") from None
        except openai.APIConnectionError as exc:
            raise Retryable(f"connection failed: {exc.__cause__ or exc}") from None
        except (ValueError, openai.APIResponseValidationError) as exc:  # a 200 with a body that is not JSON
            raise Retryable(f"malformed response body: {exc}") from None
        return self._parse(request, resp)

    def _parse(self, request: Request, resp: object) -> tuple[str, str, int, int, str]:
        """(text, finish reason, prompt tokens, completion tokens, model) of a response body."""
        if not isinstance(resp, dict):
            raise Retryable(f"malformed response body: {type(resp).__name__}")
        choices = resp.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise Retryable("response without choices")
        choice = choices[0]
        if request.prompt is not None:
            text = choice.get("text")
        else:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise Retryable("response without text")
        usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
        pt = int(usage.get("prompt_tokens") or 0)
        ct = int(usage.get("completion_tokens") or 0)
        return text, str(choice.get("finish_reason") or "stop"), pt, ct, str(resp.get("model") or self.model)


def _http_client(concurrency: int) -> Any:
    """aiohttp's transport when installed (openai[aiohttp]): at 64 requests in flight it costs a fraction of
    httpx's connection-pool bookkeeping per request; else the client's default."""
    try:
        return openai.DefaultAioHttpClient()
    except (AttributeError, ImportError, RuntimeError):
        return None


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])[:300]
    return str(exc.message)[:300]
