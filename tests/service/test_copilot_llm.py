"""The copilot with a language model: a local server speaking OpenAI's chat-completions
format stands in for it. The model gets the scan's facts; any failure of it falls back to
the data answer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from pipeline import snapshots
from pipeline.config import Settings
from pipeline.scan import run_scan
from tests.service.server import running

KEY = "sk-test-not-a-real-key"


class FakeModel:
    """An OpenAI-compatible endpoint: POST /v1/chat/completions. ``mode`` picks the answer:
    ok, error (HTTP 500), slow (sleeps past the client's timeout), garbage (not a completion)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                if fake.mode == "slow":
                    time.sleep(2)
                if fake.mode == "error":
                    self._send(500, {"error": {"message": "overloaded"}})
                elif fake.mode == "garbage":
                    self._send(200, {"id": "x", "choices": []})
                else:
                    words = f"Worded answer ({len(body['messages'])} messages)."
                    self._send(
                        200,
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": words},
                                    "finish_reason": "stop",
                                }
                            ],
                        },
                    )

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the slow mode)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @contextmanager
    def running(self) -> Iterator[FakeModel]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="module")
def service(redis_server, demo_store: Path, tmp_path_factory):
    fake = FakeModel()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("llm"),
        use_redis=True,
        redis_url=redis_server.url,
        redis_prefix=f"llm-{uuid.uuid4().hex[:8]}:v1",
        cache_ttl=0,
        cluster="sync",
        llm_url=fake.url,
        llm_api_key=KEY,
        llm_model="test-model",
        llm_timeout=0.5,
    )
    result = run_scan(demo_store, settings=settings)
    assert snapshots.publish(result, settings=settings).published
    with fake.running(), running(settings) as base:
        yield fake, base, result.snapshot


def ask(base: str, question: str, symbol: str | None = None) -> dict:
    body = {"question": question, **({"symbol": symbol} if symbol else {})}
    response = httpx.post(f"{base}/v1/copilot", json=body, timeout=30)
    assert response.status_code == 200
    return response.json()


def test_the_model_words_the_scans_facts(service) -> None:
    fake, base, document = service
    fake.mode = "ok"
    row = document["results"][0]
    answer = ask(base, "Why is it rated so?", row["ticker"])
    assert answer["body"] == "Worded answer (2 messages)."
    assert answer["meta"].endswith("· test-model") and document["snapshot_id"] in answer["meta"]
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == f"Bearer {KEY}"
    assert sent["body"]["model"] == "test-model"
    system, user = sent["body"]["messages"]
    assert system["role"] == "system" and "only the facts" in system["content"]
    assert f"TechRating {row['TechRating']:.1f} of 100" in user["content"]
    assert "Question: Why is it rated so?" in user["content"]


@pytest.mark.parametrize("mode", ["error", "slow", "garbage"])
def test_any_failure_falls_back_to_the_data_answer(service, mode) -> None:
    fake, base, document = service
    fake.mode = mode
    row = document["results"][0]
    answer = ask(base, f"Why is {row['ticker']} rated so?")
    assert answer["body"].startswith(f"{row['ticker']} (")
    assert f"TechRating {row['TechRating']:.1f}" in answer["body"]
    assert answer["meta"].endswith("language model unavailable, data answer")
    assert KEY not in json.dumps(answer)
