#!/usr/bin/env python3
"""Self-test of fake_provider.py: each test starts the server as a subprocess on a free port.

Run it with `python3 test_fake_provider.py`. It needs only 127.0.0.1 and took 10 to 25 s on a
2-core machine, depending on load.
"""

from __future__ import annotations

import concurrent.futures
import email.utils
import gzip
import http.client
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any

SERVER_SCRIPT = Path(__file__).resolve().parent / "fake_provider.py"
FORMATS = ("anthropic", "openai", "gemini")
STARTUP_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0

DIGEST_A = "ab" * 32
DIGEST_B = "0123456789abcdef" * 4
SECRET_KEY = "sk-test-secret-4f9c2e7a1b"


class ServerProcess:
    """fake_provider.py running as a child process, found through its port file."""

    def __init__(self, *extra_args: str, host: str = "127.0.0.1") -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="fake_provider_test_")
        self.port_file = Path(self.directory.name) / "port"
        self.log_path = Path(self.directory.name) / "server.log"
        self.host = host
        self._log = open(self.log_path, "wb")
        command = [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--port-file",
                   str(self.port_file), "--host", host, "--max-lifetime", "120", *extra_args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._log)
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.port_file.exists():
                return int(self.port_file.read_text())
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log()}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"no port file after {STARTUP_TIMEOUT_SECONDS} s: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """Stop the server by its pid: SIGTERM, then SIGKILL after a timeout."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self.directory.cleanup()
        return self.process.returncode

    def connect(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def provider_path(format_name: str) -> str:
    if format_name == "anthropic":
        return "/v1/messages"
    if format_name == "openai":
        return "/v1/chat/completions"
    return "/v1beta/models/gemini-test:generateContent"


def provider_body(format_name: str, prompt: str, **extra: Any) -> dict[str, Any]:
    if format_name == "anthropic":
        body = {"model": "claude-test", "max_tokens": 512, "system": "Classify the file.",
                "messages": [{"role": "user", "content": prompt}]}
    elif format_name == "openai":
        body = {"model": "gpt-test", "messages": [
            {"role": "system", "content": "Classify the file."},
            {"role": "user", "content": prompt}]}
    else:
        body = {"systemInstruction": {"parts": [{"text": "Classify the file."}]},
                "contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    body.update(extra)
    return body


def output_text(format_name: str, body: dict[str, Any]) -> str:
    if format_name == "anthropic":
        return body["content"][0]["text"]
    if format_name == "openai":
        return body["choices"][0]["message"]["content"]
    return body["candidates"][0]["content"]["parts"][0]["text"]


def stop_reason(format_name: str, body: dict[str, Any]) -> str:
    if format_name == "anthropic":
        return body["stop_reason"]
    if format_name == "openai":
        return body["choices"][0]["finish_reason"]
    return body["candidates"][0]["finishReason"]


class FakeProviderTestCase(unittest.TestCase):
    server_args: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = ServerProcess(*self.server_args)
        self.addCleanup(self.server.stop)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> Response:
        connection = self.server.connect()
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            payload = response.read()
            return Response(response.status,
                            {name.lower(): value for name, value in response.getheaders()},
                            payload)
        finally:
            connection.close()

    def call(self, format_name: str, prompt: str = "Describe the file.",
             headers: dict[str, str] | None = None, **extra: Any) -> Response:
        return self.request("POST", provider_path(format_name),
                            provider_body(format_name, prompt, **extra), headers)

    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", "/_config", config)
        self.assertEqual(response.status, 200, response.body)
        return response.json()

    def stats(self) -> dict[str, Any]:
        response = self.request("GET", "/_stats")
        self.assertEqual(response.status, 200)
        return response.json()

    def call_with_fault(self, format_name: str, fault: Any, **extra: Any) -> Response:
        self.configure({"faults": [fault]})
        return self.call(format_name, **extra)


class StartupTest(unittest.TestCase):
    def test_port_file_written_through_rename(self) -> None:
        server = ServerProcess()
        try:
            self.assertGreater(server.port, 0)
            self.assertEqual(server.port_file.read_text(), f"{server.port}\n")
            self.assertFalse(Path(f"{server.port_file}.tmp").exists())
        finally:
            server.stop()

    def test_non_loopback_host_rejected(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            port_file = Path(directory) / "port"
            for host in ("0.0.0.0", "localhost", "::"):
                with self.subTest(host=host):
                    result = subprocess.run(
                        [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--port-file",
                         str(port_file), "--host", host],
                        capture_output=True, text=True, timeout=10)
                    self.assertEqual(result.returncode, 2)
                    self.assertIn("invalid --host", result.stderr)
                    self.assertFalse(port_file.exists())

    def test_ipv6_loopback(self) -> None:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("IPv6 loopback is not available")
        server = ServerProcess(host="::1")
        try:
            connection = server.connect()
            connection.request("GET", "/_stats")
            self.assertEqual(connection.getresponse().status, 200)
            connection.close()
        finally:
            server.stop()

    def test_signals_stop_cleanly(self) -> None:
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=signal_number.name):
                server = ServerProcess()
                try:
                    server.process.send_signal(signal_number)
                    self.assertEqual(server.process.wait(STOP_TIMEOUT_SECONDS), 0)
                    self.assertIn(f"stopping after {signal_number.name}", server.log())
                finally:
                    server.stop()

    def test_max_lifetime_stops_server(self) -> None:
        server = ServerProcess("--max-lifetime", "0.5")
        try:
            self.assertEqual(server.process.wait(STOP_TIMEOUT_SECONDS), 0)
            self.assertIn("max lifetime", server.log())
        finally:
            server.stop()


class SuccessShapeTest(FakeProviderTestCase):
    def test_anthropic_text_answer(self) -> None:
        request = provider_body("anthropic", "Describe the file.")
        response = self.request("POST", "/v1/messages", request)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["content-type"], "application/json")
        self.assertEqual(int(response.headers["content-length"]), len(response.body))
        body = response.json()
        self.assertTrue(body["id"].startswith("msg_fake"))
        self.assertEqual(body["type"], "message")
        self.assertEqual(body["role"], "assistant")
        self.assertEqual(body["model"], "claude-test")
        self.assertEqual(body["stop_reason"], "end_turn")
        self.assertEqual(body["content"][0]["type"], "text")
        text = body["content"][0]["text"]
        verdict = json.loads(text)
        self.assertEqual(verdict["threat_level"], "benign")
        self.assertEqual(verdict["confidence"], 0.9)
        self.assertEqual(verdict["summary"], "fake verdict")
        self.assertEqual(sorted(verdict["iocs"]), sorted(
            ["domains", "ips", "urls", "files", "registry_keys", "processes", "mutexes"]))
        usage = body["usage"]
        self.assertEqual(usage["input_tokens"], len(json.dumps(request).encode()) // 4)
        self.assertEqual(usage["output_tokens"], len(text) // 4)
        self.assertEqual(usage["cache_read_input_tokens"], 0)
        self.assertEqual(usage["cache_creation_input_tokens"], 0)

    def test_anthropic_forced_tool(self) -> None:
        tools = [{"name": "record_verdict", "input_schema": {"type": "object"}}]
        for choice in ({"type": "tool", "name": "record_verdict"}, {"type": "any"}):
            with self.subTest(tool_choice=choice["type"]):
                body = self.call("anthropic", tools=tools, tool_choice=choice).json()
                self.assertEqual(body["stop_reason"], "tool_use")
                block = body["content"][0]
                self.assertEqual(block["type"], "tool_use")
                self.assertEqual(block["id"], "toolu_fake")
                self.assertEqual(block["name"], "record_verdict")
                self.assertEqual(block["input"]["threat_level"], "benign")
                self.assertIn("iocs", block["input"])

    def test_openai_answer_and_prefix(self) -> None:
        for path in ("/v1/chat/completions", "/openai/v1/chat/completions"):
            with self.subTest(path=path):
                request = provider_body("openai", "Describe the file.")
                response = self.request("POST", path, request)
                self.assertEqual(response.status, 200)
                body = response.json()
                self.assertEqual(body["id"], "chatcmpl-fake")
                self.assertEqual(body["object"], "chat.completion")
                self.assertEqual(body["model"], "gpt-test")
                choice = body["choices"][0]
                self.assertEqual(choice["index"], 0)
                self.assertEqual(choice["finish_reason"], "stop")
                self.assertEqual(choice["message"]["role"], "assistant")
                self.assertIsNone(choice["message"]["refusal"])
                text = choice["message"]["content"]
                self.assertEqual(json.loads(text)["threat_level"], "benign")
                usage = body["usage"]
                self.assertEqual(usage["prompt_tokens"], len(json.dumps(request).encode()) // 4)
                self.assertEqual(usage["completion_tokens"], len(text) // 4)
                self.assertEqual(usage["prompt_tokens_details"]["cached_tokens"], 0)
        self.assertEqual(self.stats()["by_format"]["openai"], 2)

    def test_gemini_answer(self) -> None:
        request = provider_body("gemini", "Describe the file.")
        response = self.request("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                                request)
        self.assertEqual(response.status, 200)
        body = response.json()
        candidate = body["candidates"][0]
        self.assertEqual(candidate["finishReason"], "STOP")
        self.assertEqual(candidate["content"]["role"], "model")
        text = candidate["content"]["parts"][0]["text"]
        self.assertEqual(json.loads(text)["threat_level"], "benign")
        self.assertEqual(body["modelVersion"], "gemini-2.5-flash")
        usage = body["usageMetadata"]
        prompt_tokens = len(json.dumps(request).encode()) // 4
        self.assertEqual(usage["promptTokenCount"], prompt_tokens)
        self.assertEqual(usage["candidatesTokenCount"], len(text) // 4)
        self.assertEqual(usage["totalTokenCount"], prompt_tokens + len(text) // 4)
        self.assertEqual(usage["cachedContentTokenCount"], 0)

    def test_configured_level_and_confidence(self) -> None:
        self.configure({"threat_level": "malicious", "confidence": 0.8})
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                verdict = json.loads(output_text(format_name, self.call(format_name).json()))
                self.assertEqual(verdict["threat_level"], "malicious")
                self.assertEqual(verdict["confidence"], 0.8)

    def test_keep_alive_reuses_connection(self) -> None:
        connection = self.server.connect()
        try:
            body = json.dumps(provider_body("openai", "first")).encode()
            connection.request("POST", "/v1/chat/completions", body=body)
            first = connection.getresponse()
            first.read()
            self.assertFalse(first.will_close)
            socket_before = connection.sock
            connection.request("POST", "/v1/chat/completions", body=body)
            second = connection.getresponse()
            self.assertEqual(second.status, 200)
            self.assertEqual(len(second.read()), int(second.getheader("Content-Length")))
            self.assertIs(connection.sock, socket_before)
        finally:
            connection.close()

    def test_invalid_request_body(self) -> None:
        self.configure({"faults": ["status_500"]})
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                response = self.request("POST", provider_path(format_name), b"not json")
                self.assertEqual(response.status, 400)
                self.assertIn("error", response.json())
        self.assertEqual(self.call("openai").status, 500)

    def test_unknown_path_not_found(self) -> None:
        response = self.request("POST", "/v2/unknown", {})
        self.assertEqual(response.status, 404)
        self.assertEqual(self.stats()["requests_total"], 0)


class ErrorFaultTest(FakeProviderTestCase):
    # (fault, status, Anthropic error type, OpenAI error type, Gemini status)
    CASES = [
        ("status_400", 400, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
        ("status_401", 401, "authentication_error", "invalid_request_error", "UNAUTHENTICATED"),
        ("status_403", 403, "permission_error", "invalid_request_error", "PERMISSION_DENIED"),
        ("status_404", 404, "not_found_error", "invalid_request_error", "NOT_FOUND"),
        ("status_500", 500, "api_error", "server_error", "INTERNAL"),
        ("status_503", 503, "api_error", "server_error", "UNAVAILABLE"),
        ("overloaded_529", 529, "overloaded_error", "server_error", "UNAVAILABLE"),
        ("rate_limit_429", 429, "rate_limit_error", "requests", "RESOURCE_EXHAUSTED"),
    ]

    def assert_error_shape(self, format_name: str, response: Response, status: int,
                           anthropic_type: str, openai_type: str, gemini_status: str) -> None:
        self.assertEqual(response.status, status)
        self.assertEqual(response.headers["content-type"], "application/json")
        body = response.json()
        if format_name == "anthropic":
            self.assertEqual(body["type"], "error")
            self.assertEqual(body["error"]["type"], anthropic_type)
            self.assertIsInstance(body["error"]["message"], str)
        elif format_name == "openai":
            self.assertEqual(body["error"]["type"], openai_type)
            self.assertIn("code", body["error"])
            self.assertIsInstance(body["error"]["message"], str)
        else:
            self.assertEqual(body["error"]["code"], status)
            self.assertEqual(body["error"]["status"], gemini_status)

    def test_status_faults(self) -> None:
        for fault, status, anthropic_type, openai_type, gemini_status in self.CASES:
            for format_name in FORMATS:
                with self.subTest(fault=fault, format=format_name):
                    response = self.call_with_fault(format_name, fault)
                    self.assert_error_shape(format_name, response, status, anthropic_type,
                                            openai_type, gemini_status)

    def test_overloaded_message(self) -> None:
        body = self.call_with_fault("anthropic", "overloaded_529").json()
        self.assertEqual(body, {"type": "error", "error": {"type": "overloaded_error",
                                                           "message": "Overloaded"},
                                "request_id": body["request_id"]})

    def test_openai_status_401_code(self) -> None:
        body = self.call_with_fault("openai", "status_401").json()
        self.assertEqual(body["error"]["code"], "invalid_api_key")

    def test_502_html_page(self) -> None:
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                response = self.call_with_fault(format_name, "status_502_html")
                self.assertEqual(response.status, 502)
                self.assertTrue(response.headers["content-type"].startswith("text/html"))
                self.assertTrue(response.body.startswith(b"<html>"))
                with self.assertRaises(ValueError):
                    response.json()

    def test_rate_limit_retry_headers(self) -> None:
        response = self.call_with_fault("anthropic", {"name": "rate_limit_429", "retry_after": 2})
        self.assertEqual(response.status, 429)
        self.assertEqual(response.headers["retry-after"], "2")
        self.assertNotIn("retry-after-ms", response.headers)

        response = self.call_with_fault("openai",
                                        {"name": "rate_limit_429", "retry_after_ms": 1500})
        self.assertEqual(response.headers["retry-after-ms"], "1500")
        self.assertNotIn("retry-after", response.headers)

        response = self.call_with_fault("gemini",
                                        {"name": "rate_limit_429", "retry_after_date": 30})
        retry_at = email.utils.parsedate_to_datetime(response.headers["retry-after"])
        seconds_ahead = retry_at.timestamp() - time.time()
        self.assertGreater(seconds_ahead, 25)
        self.assertLess(seconds_ahead, 35)

        response = self.call_with_fault("openai", {"name": "rate_limit_429"})
        self.assertNotIn("retry-after", response.headers)

    def test_gemini_retry_info(self) -> None:
        for fault, expected_delay in (("gemini_retry_info_429", "1.5s"),
                                      ({"name": "gemini_retry_info_429", "delay": "7s"}, "7s")):
            with self.subTest(delay=expected_delay):
                response = self.call_with_fault("gemini", fault)
                self.assertEqual(response.status, 429)
                error = response.json()["error"]
                self.assertEqual(error["status"], "RESOURCE_EXHAUSTED")
                retry_info = [detail for detail in error["details"]
                              if detail["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
                self.assertEqual(len(retry_info), 1)
                self.assertEqual(retry_info[0]["retryDelay"], expected_delay)
        response = self.call_with_fault("openai", "gemini_retry_info_429")
        self.assertEqual(response.status, 429)
        self.assertEqual(response.json()["error"]["code"], "rate_limit_exceeded")

    def test_quota_per_day(self) -> None:
        response = self.call_with_fault("gemini", "quota_day_429")
        self.assertEqual(response.status, 429)
        details = response.json()["error"]["details"]
        quota = [detail for detail in details
                 if detail["@type"] == "type.googleapis.com/google.rpc.QuotaFailure"]
        self.assertEqual(len(quota), 1)
        self.assertIn("PerDay", quota[0]["violations"][0]["quotaId"])

        response = self.call_with_fault("openai", "quota_day_429")
        self.assertEqual(response.status, 429)
        self.assertEqual(response.json()["error"]["code"], "insufficient_quota")
        self.assertEqual(response.json()["error"]["type"], "insufficient_quota")

        response = self.call_with_fault("anthropic", "quota_day_429")
        self.assertEqual(response.status, 429)
        self.assertEqual(response.json()["error"]["type"], "rate_limit_error")
        self.assertIn("daily", response.json()["error"]["message"])

    def test_unauthorized_enforces_credential(self) -> None:
        self.configure({"default_fault": "unauthorized"})
        credentials = {
            "anthropic": {"x-api-key": SECRET_KEY},
            "openai": {"Authorization": f"Bearer {SECRET_KEY}"},
            "gemini": {"x-goog-api-key": SECRET_KEY},
        }
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                self.assertEqual(self.call(format_name).status, 401)
                response = self.call(format_name, headers=credentials[format_name])
                self.assertEqual(response.status, 200)
        response = self.request("POST", provider_path("gemini") + f"?key={SECRET_KEY}",
                                provider_body("gemini", "x"))
        self.assertEqual(response.status, 200)


class ContentFaultTest(FakeProviderTestCase):
    def test_empty_200(self) -> None:
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                response = self.call_with_fault(format_name, "empty_200")
                self.assertEqual(response.status, 200)
                self.assertEqual(response.body, b"")
                self.assertEqual(response.headers["content-length"], "0")

    def test_garbage_200(self) -> None:
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                response = self.call_with_fault(format_name, "garbage_200")
                self.assertEqual(response.status, 200)
                self.assertGreater(len(response.body), 0)
                with self.assertRaises(ValueError):
                    response.json()

    def test_fenced(self) -> None:
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                text = output_text(format_name,
                                   self.call_with_fault(format_name, "fenced").json())
                self.assertTrue(text.startswith("```json\n"))
                self.assertTrue(text.endswith("\n```"))
                with self.assertRaises(ValueError):
                    json.loads(text)
                verdict = json.loads(text[len("```json\n"):-len("\n```")])
                self.assertEqual(verdict["threat_level"], "benign")

    def test_truncated(self) -> None:
        reasons = {"anthropic": "max_tokens", "openai": "length", "gemini": "MAX_TOKENS"}
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                full_text = output_text(format_name, self.call(format_name).json())
                body = self.call_with_fault(format_name, "truncated").json()
                text = output_text(format_name, body)
                self.assertEqual(stop_reason(format_name, body), reasons[format_name])
                self.assertTrue(full_text.startswith(text))
                self.assertLess(len(text), len(full_text))
                with self.assertRaises(ValueError):
                    json.loads(text)

    def test_truncated_tool_use(self) -> None:
        body = self.call_with_fault(
            "anthropic", "truncated", tools=[{"name": "record_verdict"}],
            tool_choice={"type": "tool", "name": "record_verdict"}).json()
        self.assertEqual(body["stop_reason"], "max_tokens")
        self.assertEqual(body["content"][0]["type"], "tool_use")
        self.assertNotIn("threat_level", body["content"][0]["input"])

    def test_refusal(self) -> None:
        body = self.call_with_fault("openai", "refusal").json()
        message = body["choices"][0]["message"]
        self.assertIsNone(message["content"])
        self.assertIsInstance(message["refusal"], str)
        self.assertGreater(len(message["refusal"]), 0)

        body = self.call_with_fault("anthropic", "refusal").json()
        self.assertEqual(body["stop_reason"], "refusal")
        self.assertNotIn("{", json.dumps([block.get("text", "") for block in body["content"]]))

        body = self.call_with_fault("gemini", "refusal").json()
        self.assertEqual(body["candidates"][0]["finishReason"], "SAFETY")
        self.assertNotIn("content", body["candidates"][0])

    def test_safety(self) -> None:
        body = self.call_with_fault("gemini", "safety").json()
        self.assertEqual(body["candidates"][0]["finishReason"], "SAFETY")
        self.assertNotIn("content", body["candidates"][0])

        body = self.call_with_fault("gemini", {"name": "safety", "mode": "prompt"}).json()
        self.assertEqual(body["promptFeedback"]["blockReason"], "SAFETY")
        self.assertNotIn("candidates", body)

        body = self.call_with_fault("anthropic", "safety").json()
        self.assertEqual(body["stop_reason"], "refusal")
        body = self.call_with_fault("openai", "safety").json()
        self.assertIsNone(body["choices"][0]["message"]["content"])

    def test_verdict_value_faults(self) -> None:
        for fault, field, value in (("unknown_level", "threat_level", "catastrophic"),
                                    ("confidence_out_of_range", "confidence", 1.7)):
            for format_name in FORMATS:
                with self.subTest(fault=fault, format=format_name):
                    body = self.call_with_fault(format_name, fault).json()
                    self.assertEqual(json.loads(output_text(format_name, body))[field], value)

    def test_invalid_utf8(self) -> None:
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                response = self.call_with_fault(format_name, "invalid_utf8")
                self.assertEqual(response.status, 200)
                self.assertIn(b"\xff\xfe", response.body)
                with self.assertRaises(UnicodeDecodeError):
                    response.body.decode("utf-8")

    def test_gzip(self) -> None:
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                response = self.call_with_fault(format_name, "gzip")
                self.assertEqual(response.status, 200)
                self.assertEqual(response.headers["content-encoding"], "gzip")
                self.assertEqual(int(response.headers["content-length"]), len(response.body))
                body = json.loads(gzip.decompress(response.body))
                self.assertEqual(json.loads(output_text(format_name, body))["confidence"], 0.9)


class TransportFaultTest(FakeProviderTestCase):
    def test_stall_after_headers(self) -> None:
        self.configure({"faults": [{"name": "stall_after_headers", "seconds": 0.6}]})
        connection = self.server.connect()
        try:
            connection.request("POST", provider_path("openai"),
                               body=json.dumps(provider_body("openai", "x")).encode())
            response = connection.getresponse()
            headers_received = time.monotonic()
            self.assertEqual(response.status, 200)
            self.assertEqual(response.getheader("Connection"), "close")
            body = response.read()
            # The stall sits between headers and body, so the body arrives 0.6 s after them.
            self.assertGreaterEqual(time.monotonic() - headers_received, 0.55)
            self.assertEqual(json.loads(body)["object"], "chat.completion")
        finally:
            connection.close()

    def test_stall_hits_client_timeout(self) -> None:
        self.configure({"faults": [{"name": "stall_after_headers", "seconds": 1}]})
        connection = self.server.connect(timeout=0.3)
        try:
            connection.request("POST", provider_path("gemini"),
                               body=json.dumps(provider_body("gemini", "x")).encode())
            response = connection.getresponse()
            self.assertEqual(response.status, 200)
            with self.assertRaises(TimeoutError):
                response.read()
        finally:
            connection.close()
        self.assertEqual(self.stats()["in_flight"], 1)

    def test_reset_mid_body(self) -> None:
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                self.configure({"faults": ["reset_mid_body"]})
                connection = self.server.connect()
                try:
                    body = json.dumps(provider_body(format_name, "x")).encode()
                    connection.request("POST", provider_path(format_name), body=body)
                    response = connection.getresponse()
                    self.assertEqual(response.status, 200)
                    with self.assertRaises((http.client.IncompleteRead, ConnectionResetError)):
                        response.read()
                finally:
                    connection.close()

    def test_reset_sends_half_then_rst(self) -> None:
        self.configure({"faults": ["reset_mid_body"]})
        body = json.dumps(provider_body("anthropic", "x")).encode()
        request = (f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        received = b""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as client:
            client.sendall(request.encode() + body)
            with self.assertRaises(ConnectionResetError):
                while True:
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    received += chunk
        head, _, partial = received.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        self.assertEqual(len(partial), length // 2)

    def test_slow_and_delay(self) -> None:
        started = time.monotonic()
        response = self.call_with_fault("anthropic", {"name": "slow", "ms": 300})
        self.assertEqual(response.status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

        self.configure({"delay_ms": 200})
        started = time.monotonic()
        self.assertEqual(self.call("gemini").status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)

    def test_concurrent_slow_requests(self) -> None:
        self.configure({"default_fault": {"name": "slow", "ms": 800}})
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
            futures = [pool.submit(self.call, FORMATS[index % 3]) for index in range(5)]
            statuses = [future.result().status for future in futures]
        elapsed = time.monotonic() - started
        self.assertEqual(statuses, [200] * 5)
        # Handled one after another, the five requests would take 4 s.
        self.assertLess(elapsed, 3.5)
        stats = self.stats()
        self.assertGreaterEqual(stats["peak_in_flight"], 5)
        self.assertEqual(stats["in_flight"], 0)


class ControlApiTest(FakeProviderTestCase):
    def test_stats_counts(self) -> None:
        bodies = [
            provider_body("anthropic", f'{{"sha256": "{DIGEST_A}", "size": 10}}'),
            provider_body("openai", f"sha256: {DIGEST_A.upper()}"),
            provider_body("gemini", f"file sha256={DIGEST_A}"),
            provider_body("openai", f"SHA-256: {DIGEST_B}"),
            provider_body("anthropic", "no digest here"),
        ]
        formats = ["anthropic", "openai", "gemini", "openai", "anthropic"]
        self.configure({"faults": [{"name": "ok", "count": 4}, "status_500"]})
        for format_name, body in zip(formats, bodies):
            self.request("POST", provider_path(format_name), body,
                         headers={"x-api-key": SECRET_KEY} if format_name == "gemini" else {})

        stats = self.stats()
        self.assertEqual(stats["requests_total"], 5)
        self.assertEqual(stats["by_format"], {"anthropic": 2, "openai": 2, "gemini": 1})
        self.assertEqual(stats["by_status"], {"200": 4, "500": 1})
        self.assertEqual(stats["by_sha256"], {DIGEST_A: 3, DIGEST_B: 1})
        self.assertEqual(stats["body_sizes"], [len(json.dumps(body)) for body in bodies])
        self.assertEqual(stats["bodies_tail"], [json.dumps(body) for body in bodies])
        self.assertEqual(stats["auth_seen"], 1)
        self.assertEqual(stats["in_flight"], 0)
        self.assertEqual(stats["peak_in_flight"], 1)
        self.assertEqual(stats["faults_applied"], {"ok": 4, "status_500": 1})
        self.assertEqual([entry["status"] for entry in stats["requests_tail"]],
                         [200, 200, 200, 200, 500])

    def test_bodies_tail_keeps_last_20(self) -> None:
        for index in range(23):
            self.call("openai", prompt=f"request {index}")
        stats = self.stats()
        self.assertEqual(len(stats["bodies_tail"]), 20)
        self.assertIn("request 3\"", stats["bodies_tail"][0])
        self.assertIn("request 22\"", stats["bodies_tail"][-1])
        self.assertEqual(len(stats["body_sizes"]), 23)

    def test_reset_clears_counters_and_faults(self) -> None:
        self.configure({"faults": ["status_500", "status_500"], "default_fault": "status_503",
                        "threat_level": "malicious", "delay_ms": 10,
                        "per_format": {"gemini": {"default_fault": "status_404"}}})
        self.assertEqual(self.call("openai", prompt=f"sha256: {DIGEST_A}").status, 500)

        response = self.request("POST", "/_reset")
        self.assertEqual(response.status, 200)
        stats = self.stats()
        self.assertEqual(stats["requests_total"], 0)
        self.assertEqual(stats["by_format"], {"anthropic": 0, "openai": 0, "gemini": 0})
        self.assertEqual(stats["by_status"], {})
        self.assertEqual(stats["by_sha256"], {})
        self.assertEqual(stats["body_sizes"], [])
        self.assertEqual(stats["bodies_tail"], [])
        self.assertEqual(stats["peak_in_flight"], 0)

        config = self.request("GET", "/_config").json()
        self.assertEqual(config["faults"], [])
        self.assertEqual(config["default_fault"], {"name": "ok"})
        self.assertEqual(config["delay_ms"], 0)
        for format_name in FORMATS:
            with self.subTest(format=format_name):
                response = self.call(format_name)
                self.assertEqual(response.status, 200)
                verdict = json.loads(output_text(format_name, response.json()))
                self.assertEqual(verdict["threat_level"], "benign")

    def test_fault_queue_order_and_count(self) -> None:
        self.configure({"faults": ["status_500", {"name": "status_503", "count": 2},
                                   "ok", "status_404"]})
        statuses = [self.call("openai").status for _ in range(6)]
        self.assertEqual(statuses, [500, 503, 503, 200, 404, 200])

    def test_queue_shared_across_formats(self) -> None:
        self.configure({"faults": ["status_500", "status_503", "status_404"]})
        self.assertEqual(self.call("anthropic").status, 500)
        self.assertEqual(self.call("gemini").status, 503)
        self.assertEqual(self.call("openai").status, 404)
        self.assertEqual(self.call("anthropic").status, 200)

    def test_default_faults(self) -> None:
        self.configure({"per_format": {"openai": {"default_fault": "status_500"}}})
        self.assertEqual(self.call("openai").status, 500)
        self.assertEqual(self.call("openai").status, 500)
        self.assertEqual(self.call("anthropic").status, 200)
        self.assertEqual(self.call("gemini").status, 200)

        self.configure({"default_fault": "status_503"})
        self.assertEqual(self.call("anthropic").status, 503)
        self.assertEqual(self.call("openai").status, 500)

    def test_per_format_queue_precedes_shared(self) -> None:
        self.configure({"faults": ["status_500"],
                        "per_format": {"gemini": {"faults": ["status_404"]}}})
        self.assertEqual(self.call("gemini").status, 404)
        self.assertEqual(self.call("gemini").status, 500)
        self.assertEqual(self.call("gemini").status, 200)
        self.assertEqual(self.call("anthropic").status, 200)

    def test_invalid_config_rejected(self) -> None:
        self.configure({"faults": ["status_500"]})
        for config in ({"faults": ["no_such_fault"]},
                       {"faults": [{"name": "status_500", "count": 0}]},
                       {"faults": [{"name": "slow", "seconds": 1}]},
                       {"faults": [{"name": "slow", "ms": "fast"}]},
                       {"delay_ms": -1},
                       {"unknown_key": 1},
                       {"per_format": {"mistral": {"default_fault": "ok"}}},
                       {"threat_level": "malicious", "default_fault": "bogus"}):
            with self.subTest(config=config):
                response = self.request("POST", "/_config", config)
                self.assertEqual(response.status, 400)
                self.assertIn("error", response.json())
        response = self.request("POST", "/_config", b"{not json")
        self.assertEqual(response.status, 400)

        config = self.request("GET", "/_config").json()
        self.assertEqual(config["threat_level"], "benign")
        self.assertEqual([entry["name"] for entry in config["faults"]], ["status_500"])



class CredentialTest(FakeProviderTestCase):
    server_args = ("--verbose",)

    def test_credentials_never_exposed(self) -> None:
        self.call("anthropic", headers={"x-api-key": SECRET_KEY})
        self.call("openai", headers={"Authorization": f"Bearer {SECRET_KEY}"})
        self.call("gemini", headers={"x-goog-api-key": SECRET_KEY})
        self.request("POST", provider_path("gemini") + f"?alt=json&key={SECRET_KEY}",
                     provider_body("gemini", "x"))
        self.call("openai")

        stats_text = self.request("GET", "/_stats").body.decode()
        self.assertNotIn(SECRET_KEY, stats_text)
        stats = json.loads(stats_text)
        self.assertEqual(stats["auth_seen"], 4)
        sources = [entry["credential"] for entry in stats["requests_tail"]]
        self.assertEqual(sources, ["x-api-key", "authorization", "x-goog-api-key", "query key",
                                   None])
        lengths = [entry["credential_length"] for entry in stats["requests_tail"]]
        self.assertEqual(lengths, [len(SECRET_KEY)] * 4 + [0])
        self.assertNotIn(SECRET_KEY, self.request("GET", "/_config").body.decode())

        log = self.server.log()
        self.assertIn("generateContent", log)
        self.assertNotIn(SECRET_KEY, log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
