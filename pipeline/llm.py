"""Words for the copilot's facts from a language model behind an OpenAI-compatible
chat-completions endpoint (``TECHNIC_LLM_URL``, ``TECHNIC_LLM_API_KEY``, ``TECHNIC_LLM_MODEL``).

The model sees the question and the facts :mod:`pipeline.copilot` found in the scan, and is
told to answer from them alone. Any failure (unreachable, an error status, a timeout, an
answer without text) raises :class:`LLMError`, whose message never holds the key; the caller
then answers with the facts themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from pipeline.config import Settings
from pipeline.errors import TechnicError

SYSTEM = (
    "You are the copilot of Technic, a stock scanner. Answer the user's question using only "
    "the facts given, which come from the latest scan; do not add prices, news or numbers "
    "that are not in them. If the facts do not answer the question, say so. Be brief: at most "
    "120 words, plain text."
)


class LLMError(TechnicError):
    """The language model gave no usable answer."""


def endpoint(url: str) -> str:
    """The chat-completions URL for ``url``: itself, or ``<url>/chat/completions`` for an
    API base such as ``https://api.openai.com/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


async def word(question: str, facts: Sequence[str], settings: Settings) -> str:
    """The model's answer to ``question`` from ``facts``; raises :class:`LLMError`."""
    if not settings.llm_url:
        raise LLMError("no language model configured (TECHNIC_LLM_URL)")
    headers = {"Content-Type": "application/json"}
    if settings.llm_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
    payload = {
        "model": settings.llm_model,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": "Facts:\n" + "\n".join(f"- {f}" for f in facts) + f"\n\nQuestion: "
                f"{question}",
            },
        ],
    }
    url = endpoint(settings.llm_url)
    try:
        async with httpx.AsyncClient(timeout=settings.llm_timeout) as client:
            response = await client.post(url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise LLMError(f"language model at {url} unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise LLMError(f"language model at {url} answered HTTP {response.status_code}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"language model at {url} sent no chat completion") from None
    if not isinstance(content, str) or not content.strip():
        raise LLMError(f"language model at {url} sent an empty answer")
    return content.strip()
