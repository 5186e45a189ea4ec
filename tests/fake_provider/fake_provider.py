#!/usr/bin/env python3
"""Fake AI provider for athena's tests: Anthropic, OpenAI and Gemini wire formats on loopback.

Start-up
    python3 fake_provider.py --port 0 --port-file FILE [--host 127.0.0.1] [--max-lifetime 900]
                             [--verbose]

    The server binds HOST, which must be 127.0.0.1 or ::1. It writes the bound port and a
    newline to FILE.tmp and renames that to FILE, so a reader never sees a partial file. It
    serves HTTP/1.1 with keep-alive, one daemon thread per connection, and exits with status 0
    on SIGTERM, on SIGINT or after --max-lifetime seconds. Invalid options exit with status 2.

Provider endpoints (POST with a JSON object body; any path prefix is accepted)
    .../v1/messages                       Anthropic Messages
    .../v1/chat/completions               OpenAI Chat Completions
    .../models/{model}:generateContent    Gemini, e.g. /v1beta/models/gemini-2.5-flash:...

    A body that is not a JSON object gets a provider-shaped 400 and takes no fault. Credentials
    (x-api-key, Authorization: Bearer, x-goog-api-key, ?key=) are recorded by length only and
    are never stored, returned or logged. Token usage is len(request body) // 4 for input and
    len(output text) // 4 for output.

Control endpoints
    GET  /_stats   requests_total, by_format {anthropic, openai, gemini}, by_status {"200": n},
                   by_sha256 {digest: n}, in_flight, peak_in_flight, body_sizes (last 10000),
                   auth_seen, bodies_tail (last 20 request bodies as text, no headers),
                   faults_applied {fault: n}, requests_tail (last 20: format, path without
                   query, body_length, sha256 list, credential header name and length, fault,
                   status).
    POST /_reset   zero the counters, clear every fault queue and restore the defaults below.
    GET  /_config  current configuration, including the pending fault queues.
    POST /_config  JSON object with any subset of these keys (400 and no change if invalid):
                     delay_ms       sleep before every provider response (default 0)
                     threat_level   verdict threat_level (default "benign")
                     confidence     verdict confidence (default 0.9)
                     faults         replaces the shared fault queue
                     default_fault  fault used when the queues are empty (default "ok")
                     per_format     {"openai": {"faults": [...], "default_fault": ...}, ...}
                                    replaces those keys for the named formats only
                   It returns the resulting configuration.

    A fault is a name or an object {"name": ..., "count": N, ...params}; count (default 1)
    applies only to queue entries. A provider request takes its fault from the first
    non-empty source in this order: its format's queue, the shared queue, its format's
    default_fault, the global default_fault.

Faults (params in brackets)
    ok                      valid verdict, as an Anthropic tool_use block when tool_choice
                            forces a tool ({"type": "tool"} or {"type": "any"})
    unauthorized            401 in provider shape when the request has no credential, else ok
    status_400 status_401 status_403 status_404 status_500 status_503
                            that status with the provider's error body
    status_502_html         502 with an HTML proxy page, content-type text/html
    overloaded_529          529 with Anthropic's overloaded_error "Overloaded" body, or with
                            the unavailable error body of OpenAI and Gemini
    rate_limit_429          429 [retry_after: s -> retry-after, retry_after_ms: ms ->
                            retry-after-ms, retry_after_date: s from now or a literal string
                            -> retry-after as an HTTP-date]
    gemini_retry_info_429   429 whose Gemini error.details contain google.rpc.RetryInfo
                            [delay: "1.5s"]. The other formats get a plain rate limit 429.
    quota_day_429           429 per-day quota: Gemini QuotaFailure quotaId with PerDay,
                            OpenAI insufficient_quota, Anthropic message about a daily limit
    empty_200               200 with an empty body
    garbage_200             200 with a body that is not JSON
    fenced                  verdict inside a ```json fence
    truncated               first half of the verdict text, with stop_reason max_tokens,
                            finish_reason length or finishReason MAX_TOKENS
    refusal                 OpenAI refusal with null content, Anthropic stop_reason refusal
                            without JSON, Gemini the same as safety
    safety                  Gemini finishReason SAFETY without parts [mode: "candidate"], or
                            promptFeedback.blockReason SAFETY without candidates
                            [mode: "prompt"]. The other formats get a refusal.
    unknown_level           threat_level "catastrophic"
    confidence_out_of_range confidence 1.7
    invalid_utf8            raw bytes 0xff 0xfe inside the verdict summary
    stall_after_headers     headers, then a sleep [seconds: 30], then the body and close
    reset_mid_body          headers and half the body, then a TCP reset (SO_LINGER 0)
    gzip                    valid response with Content-Encoding: gzip
    slow                    sleep [ms: 1000] before a valid response
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import email.utils
import gzip
import json
import logging
import math
import os
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

LOGGER = logging.getLogger("fake_provider")

ALLOWED_HOSTS = ("127.0.0.1", "::1")
FORMATS = ("anthropic", "openai", "gemini")

DEFAULT_THREAT_LEVEL = "benign"
DEFAULT_CONFIDENCE = 0.9
DEFAULT_MAX_LIFETIME_SECONDS = 900.0
BODY_SIZES_LIMIT = 10000
BODIES_TAIL_LIMIT = 20
MAX_BODY_BYTES = 64 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT_SECONDS = 60

# The summary carries this marker when invalid_utf8 is active. The encoder replaces it with
# raw bytes after JSON encoding, because json.dumps cannot produce invalid UTF-8 itself.
INVALID_UTF8_MARKER = "@@INVALID_UTF8@@"
INVALID_UTF8_BYTES = b"\xff\xfe"

REFUSAL_TEXT = "The fake provider declines to classify this file."

# A digest is recorded when 64 hex digits follow "sha256" or "sha-256" after at most 12
# characters that are neither letters nor digits, e.g. `"sha256": "ab12..."` in a JSON string.
SHA256_PATTERN = re.compile(r"sha-?256[^0-9a-z]{0,12}([0-9a-f]{64})(?![0-9a-f])", re.IGNORECASE)
GEMINI_PATH_PATTERN = re.compile(r"^.*/models/([^/:]+):generateContent$")
QUERY_KEY_PATTERN = re.compile(r"([?&]key=)[^&\s]*", re.IGNORECASE)


class ConfigError(ValueError):
    """Invalid POST /_config payload. The message names the offending key."""


# ---------------------------------------------------------------------------------------------
# Fault definitions and validation


def _is_non_negative_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


ParamCheck = tuple[str, Callable[[Any], bool]]
NON_NEGATIVE_NUMBER: ParamCheck = ("a non-negative number", _is_non_negative_number)
TEXT: ParamCheck = ("a string", lambda value: isinstance(value, str))
NUMBER_OR_TEXT: ParamCheck = (
    "a non-negative number or a string",
    lambda value: _is_non_negative_number(value) or isinstance(value, str),
)
SAFETY_MODE: ParamCheck = (
    '"candidate" or "prompt"',
    lambda value: value in ("candidate", "prompt"),
)

# Parameters that each fault accepts, with the check POST /_config applies to them.
FAULT_PARAMS: dict[str, dict[str, ParamCheck]] = {
    "ok": {},
    "unauthorized": {},
    "status_400": {},
    "status_401": {},
    "status_403": {},
    "status_404": {},
    "status_500": {},
    "status_502_html": {},
    "status_503": {},
    "overloaded_529": {},
    "rate_limit_429": {
        "retry_after": NON_NEGATIVE_NUMBER,
        "retry_after_ms": NON_NEGATIVE_NUMBER,
        "retry_after_date": NUMBER_OR_TEXT,
    },
    "gemini_retry_info_429": {"delay": TEXT},
    "quota_day_429": {},
    "empty_200": {},
    "garbage_200": {},
    "fenced": {},
    "truncated": {},
    "refusal": {},
    "safety": {"mode": SAFETY_MODE},
    "unknown_level": {},
    "confidence_out_of_range": {},
    "invalid_utf8": {},
    "stall_after_headers": {"seconds": NON_NEGATIVE_NUMBER},
    "reset_mid_body": {},
    "gzip": {},
    "slow": {"ms": NON_NEGATIVE_NUMBER},
}

# Status code of each fault that returns a provider error body.
ERROR_FAULT_STATUS = {
    "status_400": 400,
    "status_401": 401,
    "status_403": 403,
    "status_404": 404,
    "status_500": 500,
    "status_503": 503,
    "overloaded_529": 529,
    "rate_limit_429": 429,
    "gemini_retry_info_429": 429,
    "quota_day_429": 429,
}


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


OK_FAULT = Fault("ok")


@dataclasses.dataclass
class QueuedFault:
    fault: Fault
    remaining: int


def parse_fault(entry: Any, where: str) -> tuple[Fault, int]:
    """Validate one fault entry and return the fault with its count (1 when not given)."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a fault name or an object, got {entry!r}")

    name = entry.get("name")
    if name not in FAULT_PARAMS:
        known = ", ".join(sorted(FAULT_PARAMS))
        raise ConfigError(f"{where}: unknown fault {name!r}; known faults: {known}")

    count = entry.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"{where}: count must be a positive integer, got {count!r}")

    params = {key: value for key, value in entry.items() if key not in ("name", "count")}
    accepted = FAULT_PARAMS[name]
    for key, value in params.items():
        if key not in accepted:
            allowed = ", ".join(sorted(accepted)) or "none"
            raise ConfigError(f"{where}: fault {name} has no param {key!r}; params: {allowed}")
        description, check = accepted[key]
        if not check(value):
            raise ConfigError(f"{where}: param {key} of {name} must be {description}")
    return Fault(name, params), count


def parse_fault_queue(entries: Any, where: str) -> collections.deque[QueuedFault]:
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of faults, got {entries!r}")
    queue: collections.deque[QueuedFault] = collections.deque()
    for index, entry in enumerate(entries):
        fault, count = parse_fault(entry, f"{where}[{index}]")
        queue.append(QueuedFault(fault, count))
    return queue


def take_from_queue(queue: collections.deque[QueuedFault]) -> Fault | None:
    if not queue:
        return None
    head = queue[0]
    head.remaining -= 1
    if head.remaining == 0:
        queue.popleft()
    return head.fault


def queue_to_json(queue: collections.deque[QueuedFault]) -> list[dict[str, Any]]:
    return [{**entry.fault.to_json(), "count": entry.remaining} for entry in queue]


# ---------------------------------------------------------------------------------------------
# Shared state: configuration and counters


@dataclasses.dataclass(frozen=True)
class Credential:
    """Where a request carried a credential, and its length. The value is never kept."""

    source: str
    length: int


@dataclasses.dataclass(frozen=True)
class VerdictSettings:
    delay_ms: float
    threat_level: str
    confidence: float


@dataclasses.dataclass
class RequestRecord:
    generation: int
    summary: dict[str, Any]
    finished: bool = False


class ProviderState:
    """Configuration, fault queues and counters, all guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._in_flight = 0
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._generation += 1
        self._requests_total = 0
        self._by_format = {name: 0 for name in FORMATS}
        self._by_status: collections.Counter[str] = collections.Counter()
        self._by_sha256: collections.Counter[str] = collections.Counter()
        self._faults_applied: collections.Counter[str] = collections.Counter()
        # in_flight is a gauge of live requests, so a reset keeps it and restarts the peak.
        self._peak_in_flight = self._in_flight
        self._body_sizes: collections.deque[int] = collections.deque(maxlen=BODY_SIZES_LIMIT)
        self._bodies_tail: collections.deque[str] = collections.deque(maxlen=BODIES_TAIL_LIMIT)
        self._requests_tail: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=BODIES_TAIL_LIMIT
        )
        self._auth_seen = 0

        self._delay_ms = 0.0
        self._threat_level = DEFAULT_THREAT_LEVEL
        self._confidence = DEFAULT_CONFIDENCE
        self._shared_queue: collections.deque[QueuedFault] = collections.deque()
        self._default_fault = OK_FAULT
        self._format_queues = {name: collections.deque() for name in FORMATS}
        self._format_defaults: dict[str, Fault | None] = {name: None for name in FORMATS}

    def reset(self) -> None:
        with self._lock:
            self._reset_locked()

    def apply_config(self, payload: Any) -> dict[str, Any]:
        """Validate the whole payload, then apply it, so an invalid payload changes nothing."""
        if not isinstance(payload, dict):
            raise ConfigError("the body must be a JSON object")
        known_keys = {"delay_ms", "threat_level", "confidence", "faults", "default_fault",
                      "per_format"}
        unknown = sorted(set(payload) - known_keys)
        if unknown:
            raise ConfigError(f"unknown keys {unknown}; accepted: {sorted(known_keys)}")

        updates: dict[str, Any] = {}
        if "delay_ms" in payload:
            if not _is_non_negative_number(payload["delay_ms"]):
                raise ConfigError("delay_ms must be a non-negative number")
            updates["delay_ms"] = float(payload["delay_ms"])
        if "threat_level" in payload:
            if not isinstance(payload["threat_level"], str):
                raise ConfigError("threat_level must be a string")
            updates["threat_level"] = payload["threat_level"]
        if "confidence" in payload:
            value = payload["confidence"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError("confidence must be a number")
            updates["confidence"] = value
        if "faults" in payload:
            updates["faults"] = parse_fault_queue(payload["faults"], "faults")
        if "default_fault" in payload:
            updates["default_fault"] = parse_fault(payload["default_fault"], "default_fault")[0]
        format_updates = self._parse_per_format(payload.get("per_format", {}))

        with self._lock:
            self._delay_ms = updates.get("delay_ms", self._delay_ms)
            self._threat_level = updates.get("threat_level", self._threat_level)
            self._confidence = updates.get("confidence", self._confidence)
            self._shared_queue = updates.get("faults", self._shared_queue)
            self._default_fault = updates.get("default_fault", self._default_fault)
            for name, values in format_updates.items():
                if "faults" in values:
                    self._format_queues[name] = values["faults"]
                if "default_fault" in values:
                    self._format_defaults[name] = values["default_fault"]
            return self._config_locked()

    @staticmethod
    def _parse_per_format(per_format: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(per_format, dict):
            raise ConfigError("per_format must be an object keyed by format")
        result: dict[str, dict[str, Any]] = {}
        for name, settings in per_format.items():
            where = f"per_format.{name}"
            if name not in FORMATS:
                raise ConfigError(f"{where}: unknown format; formats: {', '.join(FORMATS)}")
            if not isinstance(settings, dict):
                raise ConfigError(f"{where}: expected an object")
            unknown = sorted(set(settings) - {"faults", "default_fault"})
            if unknown:
                raise ConfigError(f"{where}: unknown keys {unknown}; accepted: default_fault, "
                                  "faults")
            values: dict[str, Any] = {}
            if "faults" in settings:
                values["faults"] = parse_fault_queue(settings["faults"], f"{where}.faults")
            if "default_fault" in settings:
                values["default_fault"] = parse_fault(
                    settings["default_fault"], f"{where}.default_fault"
                )[0]
            result[name] = values
        return result

    def config(self) -> dict[str, Any]:
        with self._lock:
            return self._config_locked()

    def _config_locked(self) -> dict[str, Any]:
        per_format = {}
        for name in FORMATS:
            default = self._format_defaults[name]
            per_format[name] = {
                "faults": queue_to_json(self._format_queues[name]),
                "default_fault": default.to_json() if default else None,
            }
        return {
            "delay_ms": self._delay_ms,
            "threat_level": self._threat_level,
            "confidence": self._confidence,
            "faults": queue_to_json(self._shared_queue),
            "default_fault": self._default_fault.to_json(),
            "per_format": per_format,
        }

    def verdict_settings(self) -> VerdictSettings:
        with self._lock:
            return VerdictSettings(self._delay_ms, self._threat_level, self._confidence)

    def begin_request(
        self, format_name: str, path: str, body: bytes, credential: Credential | None
    ) -> RequestRecord:
        """Count a provider request as received and in flight."""
        text = body.decode("utf-8", errors="replace")
        digests = sorted({match.lower() for match in SHA256_PATTERN.findall(text)})
        summary = {
            "format": format_name,
            "path": path,
            "body_length": len(body),
            "sha256": digests,
            "credential": credential.source if credential else None,
            "credential_length": credential.length if credential else 0,
            "fault": None,
            "status": None,
        }
        with self._lock:
            self._requests_total += 1
            self._by_format[format_name] += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            self._body_sizes.append(len(body))
            self._bodies_tail.append(text)
            self._requests_tail.append(summary)
            self._by_sha256.update(digests)
            if credential is not None:
                self._auth_seen += 1
            return RequestRecord(self._generation, summary)

    def take_fault(self, record: RequestRecord, format_name: str) -> Fault:
        with self._lock:
            fault = take_from_queue(self._format_queues[format_name])
            if fault is None:
                fault = take_from_queue(self._shared_queue)
            if fault is None:
                fault = self._format_defaults[format_name] or self._default_fault
            if record.generation == self._generation:
                self._faults_applied[fault.name] += 1
                record.summary["fault"] = fault.name
            return fault

    def record_status(self, record: RequestRecord, status: int) -> None:
        with self._lock:
            if record.generation == self._generation:
                self._by_status[str(status)] += 1
                record.summary["status"] = status

    def finish_request(self, record: RequestRecord) -> None:
        """Remove the request from in_flight; later calls for the same record do nothing."""
        with self._lock:
            if not record.finished:
                record.finished = True
                self._in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests_total": self._requests_total,
                "by_format": dict(self._by_format),
                "by_status": dict(self._by_status),
                "by_sha256": dict(self._by_sha256),
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak_in_flight,
                "body_sizes": list(self._body_sizes),
                "auth_seen": self._auth_seen,
                "bodies_tail": list(self._bodies_tail),
                "faults_applied": dict(self._faults_applied),
                "requests_tail": [dict(summary) for summary in self._requests_tail],
            }


# ---------------------------------------------------------------------------------------------
# Provider responses


@dataclasses.dataclass
class Reply:
    """An HTTP response and how to deliver it: complete, stalled after headers, or reset."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    delivery: str = "complete"
    stall_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class RequestContext:
    format_name: str
    model: str
    request: dict[str, Any]
    body_length: int
    settings: VerdictSettings
    sequence: int


@dataclasses.dataclass(frozen=True)
class ModelOutput:
    """The model output to wrap in a provider shape.

    kind is "verdict", "fenced", "truncated", "refusal" or "safety". text is the output text
    for the text kinds and verdict the object for Anthropic tool_use.
    """

    kind: str
    text: str
    verdict: dict[str, Any]


def build_verdict(settings: VerdictSettings, fault: Fault) -> dict[str, Any]:
    threat_level = settings.threat_level
    confidence: float = settings.confidence
    summary = "fake verdict"
    if fault.name == "unknown_level":
        threat_level = "catastrophic"
    if fault.name == "confidence_out_of_range":
        confidence = 1.7
    if fault.name == "invalid_utf8":
        summary = f"fake verdict {INVALID_UTF8_MARKER}"
    return {
        "threat_level": threat_level,
        "confidence": confidence,
        "malware_family": None,
        "malware_type": None,
        "signatures": [],
        "behaviors": [],
        "iocs": {
            "domains": [],
            "ips": [],
            "urls": [],
            "files": [],
            "registry_keys": [],
            "processes": [],
            "mutexes": [],
        },
        "recommendations": [],
        "summary": summary,
    }


def build_model_output(settings: VerdictSettings, fault: Fault) -> ModelOutput:
    verdict = build_verdict(settings, fault)
    text = json.dumps(verdict)
    if fault.name == "fenced":
        return ModelOutput("fenced", "```json\n" + json.dumps(verdict, indent=2) + "\n```", verdict)
    if fault.name == "truncated":
        return ModelOutput("truncated", text[: len(text) // 2], verdict)
    if fault.name in ("refusal", "safety"):
        return ModelOutput(fault.name, REFUSAL_TEXT, verdict)
    return ModelOutput("verdict", text, verdict)


def forced_tool_name(request: dict[str, Any]) -> str | None:
    """Return the tool name an Anthropic request forces, or None when it forces none."""
    choice = request.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return choice["name"]
    tools = request.get("tools")
    if choice.get("type") == "any" and isinstance(tools, list) and tools:
        first = tools[0]
        if isinstance(first, dict) and isinstance(first.get("name"), str):
            return first["name"]
    return None


def anthropic_success(context: RequestContext, output: ModelOutput) -> dict[str, Any]:
    tool_name = forced_tool_name(context.request)
    if output.kind in ("refusal", "safety"):
        content = [{"type": "text", "text": output.text}]
        stop_reason = "refusal"
        output_text = output.text
    elif tool_name is not None and output.kind != "fenced":
        # NOTE: a truncated tool call carries an empty input object here. A real truncated
        # tool_use block may instead carry whichever fields were complete.
        tool_input = {} if output.kind == "truncated" else output.verdict
        content = [
            {"type": "tool_use", "id": "toolu_fake", "name": tool_name, "input": tool_input}
        ]
        stop_reason = "max_tokens" if output.kind == "truncated" else "tool_use"
        output_text = json.dumps(tool_input)
    else:
        content = [{"type": "text", "text": output.text}]
        stop_reason = "max_tokens" if output.kind == "truncated" else "end_turn"
        output_text = output.text
    return {
        "id": f"msg_fake_{context.sequence:06d}",
        "type": "message",
        "role": "assistant",
        "model": context.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": context.body_length // 4,
            "output_tokens": len(output_text) // 4,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }


def openai_success(context: RequestContext, output: ModelOutput) -> dict[str, Any]:
    if output.kind in ("refusal", "safety"):
        message = {"role": "assistant", "content": None, "refusal": output.text}
    else:
        message = {"role": "assistant", "content": output.text, "refusal": None}
    finish_reason = "length" if output.kind == "truncated" else "stop"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": context.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": context.body_length // 4,
            "completion_tokens": len(output.text) // 4,
            "total_tokens": context.body_length // 4 + len(output.text) // 4,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def gemini_success(context: RequestContext, output: ModelOutput, fault: Fault) -> dict[str, Any]:
    prompt_tokens = context.body_length // 4
    if output.kind in ("refusal", "safety"):
        rating = {
            "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
            "probability": "HIGH",
            "blocked": True,
        }
        body: dict[str, Any] = {
            "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
            "modelVersion": context.model,
        }
        if fault.params.get("mode") == "prompt":
            body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": [rating]}
        else:
            body["candidates"] = [
                {"finishReason": "SAFETY", "index": 0, "safetyRatings": [rating]}
            ]
        return body

    output_tokens = len(output.text) // 4
    finish_reason = "MAX_TOKENS" if output.kind == "truncated" else "STOP"
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": output.text}]},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
            "cachedContentTokenCount": 0,
        },
        "modelVersion": context.model,
    }


def encode_json(value: Any) -> bytes:
    data = json.dumps(value).encode("utf-8")
    return data.replace(INVALID_UTF8_MARKER.encode("ascii"), INVALID_UTF8_BYTES)


def request_id_headers(context: RequestContext) -> list[tuple[str, str]]:
    if context.format_name == "anthropic":
        return [("request-id", f"req_fake_{context.sequence:06d}")]
    if context.format_name == "openai":
        return [("x-request-id", f"req_fake_{context.sequence:06d}")]
    return []


def build_success_reply(context: RequestContext, fault: Fault) -> Reply:
    output = build_model_output(context.settings, fault)
    if context.format_name == "anthropic":
        body = anthropic_success(context, output)
    elif context.format_name == "openai":
        body = openai_success(context, output)
    else:
        body = gemini_success(context, output, fault)

    reply = Reply(200, encode_json(body), headers=request_id_headers(context))
    if fault.name == "gzip":
        reply.body = gzip.compress(reply.body)
        reply.headers.append(("Content-Encoding", "gzip"))
    elif fault.name == "stall_after_headers":
        reply.delivery = "stall"
        reply.stall_seconds = float(fault.params.get("seconds", 30))
    elif fault.name == "reset_mid_body":
        reply.delivery = "reset"
    return reply


# ---------------------------------------------------------------------------------------------
# Provider error responses

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}

# OpenAI error (type, code) per status.
OPENAI_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
    529: ("server_error", None),
}

GEMINI_ERROR_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    529: "UNAVAILABLE",
}

ERROR_MESSAGES = {
    400: "fake provider: the request is invalid",
    401: "fake provider: the API key is missing or invalid",
    403: "fake provider: the API key may not use this resource",
    404: "fake provider: model {model} was not found",
    429: "fake provider: request rate limit exceeded, retry later",
    500: "fake provider: internal server error",
    503: "fake provider: service temporarily unavailable",
    529: "Overloaded",
}

DAILY_QUOTA_MESSAGES = {
    "anthropic": "fake provider: your organization reached its daily limit for this model; "
    "the limit resets tomorrow",
    "openai": "fake provider: current quota exceeded; check the plan and billing details",
    "gemini": "fake provider: quota exceeded for requests per day; retry tomorrow",
}


def error_body(context: RequestContext, status: int, message: str) -> dict[str, Any]:
    if context.format_name == "anthropic":
        return {
            "type": "error",
            "error": {"type": ANTHROPIC_ERROR_TYPES[status], "message": message},
            "request_id": f"req_fake_{context.sequence:06d}",
        }
    if context.format_name == "openai":
        error_type, code = OPENAI_ERROR_KINDS[status]
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return {"error": {"code": status, "message": message, "status": GEMINI_ERROR_STATUSES[status]}}


def retry_after_headers(fault: Fault) -> list[tuple[str, str]]:
    headers = []
    if "retry_after" in fault.params:
        headers.append(("retry-after", format_number(fault.params["retry_after"])))
    if "retry_after_ms" in fault.params:
        headers.append(("retry-after-ms", format_number(fault.params["retry_after_ms"])))
    if "retry_after_date" in fault.params:
        value = fault.params["retry_after_date"]
        if isinstance(value, str):
            headers.append(("retry-after", value))
        else:
            headers.append(("retry-after", email.utils.formatdate(time.time() + value,
                                                                  usegmt=True)))
    return headers


def format_number(value: float) -> str:
    """Format 2 and 2.0 as "2" and 1.5 as "1.5", the way retry headers carry numbers."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def build_error_reply(context: RequestContext, fault_name: str, fault: Fault) -> Reply:
    status = ERROR_FAULT_STATUS.get(fault_name, 401)
    message = ERROR_MESSAGES[status].format(model=context.model)
    headers = request_id_headers(context)
    body = error_body(context, status, message)

    if fault_name == "rate_limit_429":
        headers += retry_after_headers(fault)
    elif fault_name == "quota_day_429":
        body = error_body(context, status, DAILY_QUOTA_MESSAGES[context.format_name])
        if context.format_name == "openai":
            body["error"]["type"] = "insufficient_quota"
            body["error"]["code"] = "insufficient_quota"
        elif context.format_name == "gemini":
            body["error"]["details"] = [gemini_quota_failure(context.model, per_day=True)]
    elif fault_name == "gemini_retry_info_429" and context.format_name == "gemini":
        body["error"]["details"] = [
            gemini_quota_failure(context.model, per_day=False),
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": fault.params.get("delay", "1.5s"),
            },
        ]
    elif fault_name in ("status_401", "unauthorized") and context.format_name == "gemini":
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ]
    return Reply(status, encode_json(body), headers=headers)


def gemini_quota_failure(model: str, per_day: bool) -> dict[str, Any]:
    period = "PerDay" if per_day else "PerMinute"
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": f"GenerateRequests{period}PerProjectPerModel",
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": "100",
            }
        ],
    }


PROXY_502_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<h1>502 Bad Gateway</h1>\r\n<p>The upstream server sent an invalid response.</p>\r\n"
    b"<hr><p>fake-proxy</p>\r\n</body>\r\n</html>\r\n"
)


def build_reply(context: RequestContext, fault: Fault, has_credential: bool) -> Reply:
    """Build the provider's response to one request under the given fault."""
    if fault.name == "status_502_html":
        return Reply(502, PROXY_502_PAGE, content_type="text/html")
    if fault.name == "empty_200":
        return Reply(200, b"", headers=request_id_headers(context))
    if fault.name == "garbage_200":
        return Reply(200, b"fake provider: this body is not JSON {", headers=[])
    if fault.name in ERROR_FAULT_STATUS:
        return build_error_reply(context, fault.name, fault)
    if fault.name == "unauthorized" and not has_credential:
        return build_error_reply(context, "unauthorized", fault)
    return build_success_reply(context, fault)


def invalid_body_reply(context: RequestContext, problem: str) -> Reply:
    body = error_body(context, 400, f"fake provider: invalid request body: {problem}")
    return Reply(400, encode_json(body), headers=request_id_headers(context))


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


def route_provider(path: str) -> tuple[str, str | None] | None:
    """Return (format, model from the path) for a provider endpoint, or None."""
    if path.endswith("/v1/messages"):
        return "anthropic", None
    if path.endswith("/v1/chat/completions"):
        return "openai", None
    match = GEMINI_PATH_PATTERN.match(path)
    if match:
        return "gemini", urllib.parse.unquote(match.group(1))
    return None


def find_credential(headers: Any, query: str) -> Credential | None:
    """Return where the request carries a non-empty credential, keeping only its length."""
    api_key = headers.get("x-api-key")
    if api_key:
        return Credential("x-api-key", len(api_key))
    authorization = headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return Credential("authorization", len(authorization[7:].strip()))
    google_key = headers.get("x-goog-api-key")
    if google_key:
        return Credential("x-goog-api-key", len(google_key))
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name == "key" and value:
            return Credential("query key", len(value))
    return None


def redact_secrets(text: str) -> str:
    return QUERY_KEY_PATTERN.sub(r"\1<redacted>", text)


class RequestBodyError(Exception):
    """A request body that cannot be read. The handler responds with status and closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "athena-fake-provider/1.0"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = IDLE_CONNECTION_TIMEOUT_SECONDS

    server: FakeProviderServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        LOGGER.debug("%s %s", self.address_string(), redact_secrets(format % args))

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        LOGGER.warning("%s %s", self.address_string(), redact_secrets(format % args))

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = urllib.parse.urlsplit(self.path).path
        self._discard_body()
        if path == "/_stats":
            self._send_json(200, self.server.state.stats())
        elif path == "/_config":
            self._send_json(200, self.server.state.config())
        else:
            self._send_not_found(path)

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        split = urllib.parse.urlsplit(self.path)
        try:
            body = self._read_body()
        except RequestBodyError as error:
            LOGGER.warning("rejected request body for %s: %s", split.path, error)
            self.close_connection = True
            self._send_json(error.status, {"error": str(error)})
            return

        if split.path == "/_reset":
            self.server.state.reset()
            LOGGER.info("counters and configuration reset")
            self._send_json(200, {"reset": True})
        elif split.path == "/_config":
            self._handle_config(body)
        else:
            route = route_provider(split.path)
            if route is None:
                self._send_not_found(split.path)
            else:
                self._handle_provider(route[0], route[1], split, body)

    def _handle_config(self, body: bytes) -> None:
        try:
            payload = json.loads(body.decode("utf-8")) if body else {}
            config = self.server.state.apply_config(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            LOGGER.warning("rejected /_config: body is not JSON: %s", error)
            self._send_json(400, {"error": f"body is not valid JSON: {error}"})
            return
        except ConfigError as error:
            LOGGER.warning("rejected /_config: %s", error)
            self._send_json(400, {"error": str(error)})
            return
        LOGGER.info("configuration changed: %s", json.dumps(payload))
        self._send_json(200, config)

    def _handle_provider(
        self,
        format_name: str,
        path_model: str | None,
        split: urllib.parse.SplitResult,
        body: bytes,
    ) -> None:
        state = self.server.state
        credential = find_credential(self.headers, split.query)
        record = state.begin_request(format_name, split.path, body, credential)
        try:
            request, problem = parse_request_object(body)
            model = path_model or str(request.get("model") or "fake-model")
            context = RequestContext(
                format_name=format_name,
                model=model,
                request=request,
                body_length=len(body),
                settings=state.verdict_settings(),
                sequence=self.server.next_sequence(),
            )
            if problem is not None:
                LOGGER.warning("rejected %s request %d on %s: body is %s", format_name,
                               context.sequence, split.path, problem)
                reply = invalid_body_reply(context, problem)
                delay_seconds = 0.0
            else:
                fault = state.take_fault(record, format_name)
                reply = build_reply(context, fault, credential is not None)
                delay_seconds = context.settings.delay_ms / 1000.0
                if fault.name == "slow":
                    delay_seconds += float(fault.params.get("ms", 1000)) / 1000.0

            if delay_seconds > 0:
                time.sleep(delay_seconds)
            self._send_reply(reply, record)
        finally:
            state.finish_request(record)

    def _send_reply(self, reply: Reply, record: RequestRecord) -> None:
        """Send the reply; the request leaves in_flight just before its last bytes are sent."""
        state = self.server.state
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.delivery != "complete":
            self.send_header("Connection", "close")
            self.close_connection = True
        state.record_status(record, reply.status)
        self.end_headers()

        if reply.delivery == "stall":
            time.sleep(reply.stall_seconds)
            state.finish_request(record)
            self.wfile.write(reply.body)
        elif reply.delivery == "reset":
            state.finish_request(record)
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self._reset_connection()
        else:
            state.finish_request(record)
            self.wfile.write(reply.body)

    def _reset_connection(self) -> None:
        """Close the socket with SO_LINGER 0, so the peer gets a TCP RST instead of a FIN."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # detach() hands over the descriptor even while rfile and wfile still refer to the
        # socket, and leaves the socket object closed so later shutdown calls fail harmlessly.
        os.close(self.connection.detach())
        self.close_connection = True

    def _send_json(self, status: int, value: Any) -> None:
        data = json.dumps(value).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_not_found(self, path: str) -> None:
        LOGGER.warning("no endpoint for %s %s", self.command, redact_secrets(path))
        self._send_json(404, {"error": f"no endpoint for {self.command} {path}"})

    def _discard_body(self) -> None:
        try:
            self._read_body()
        except RequestBodyError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise RequestBodyError(400, f"invalid Content-Length {length_text!r}") from None
        if length < 0:
            raise RequestBodyError(400, f"invalid Content-Length {length_text!r}")
        if length > MAX_BODY_BYTES:
            raise RequestBodyError(413, f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
        body = self.rfile.read(length)
        if len(body) != length:
            raise RequestBodyError(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked_body(self) -> bytes:
        chunks = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise RequestBodyError(400, f"invalid chunk size {size_line!r}") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise RequestBodyError(413, f"chunked body exceeds {MAX_BODY_BYTES} bytes")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)
        # Skip trailer fields up to the blank line that ends the message.
        while self.rfile.readline(1024).strip():
            pass
        return b"".join(chunks)


def parse_request_object(body: bytes) -> tuple[dict[str, Any], str | None]:
    """Return the request object and None, or an empty object and what is wrong with it."""
    try:
        request = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        return {}, f"not UTF-8 ({error})"
    except json.JSONDecodeError as error:
        return {}, f"not JSON ({error})"
    if not isinstance(request, dict):
        return {}, "not a JSON object"
    return request, None


class FakeProviderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, state: ProviderState) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.state = state
        self._sequence = 0
        self._sequence_lock = threading.Lock()
        super().__init__((host, port), FakeProviderHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name with getfqdn, but a loopback-only test
        # server needs no name lookup, so bind directly.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def next_sequence(self) -> int:
        with self._sequence_lock:
            self._sequence += 1
            return self._sequence

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            LOGGER.debug("connection from %s ended: %s", client_address, error)
        else:
            LOGGER.exception("request from %s failed", client_address)


# ---------------------------------------------------------------------------------------------
# Start-up


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fake Anthropic, OpenAI and Gemini endpoint for tests, on loopback only."
    )
    parser.add_argument("--port", type=int, default=0,
                        help="TCP port to bind, or 0 for a free port")
    parser.add_argument("--port-file", required=True,
                        help="file that receives the bound port once the server listens")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address to bind: 127.0.0.1 (default) or ::1")
    parser.add_argument("--max-lifetime", type=float, default=DEFAULT_MAX_LIFETIME_SECONDS,
                        help="seconds after which the server stops by itself (default 900)")
    parser.add_argument("--verbose", action="store_true",
                        help="log every request line, with ?key= values redacted")
    args = parser.parse_args(argv)
    if args.host not in ALLOWED_HOSTS:
        parser.error(f"invalid --host {args.host!r}: use 127.0.0.1 or ::1")
    if not 0 <= args.port <= 65535:
        parser.error(f"invalid --port {args.port}: use 0 to 65535")
    if not (math.isfinite(args.max_lifetime) and args.max_lifetime > 0):
        parser.error(f"invalid --max-lifetime {args.max_lifetime}: use a positive number")
    return args


def write_port_file(path: str, port: int) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(f"{port}\n")
    os.replace(temporary, path)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="fake_provider %(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )

    stop_event = threading.Event()
    stop_reasons: list[str] = []

    def request_stop(signal_number: int, _frame: Any) -> None:
        stop_reasons.append(signal.Signals(signal_number).name)
        stop_event.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    try:
        server = FakeProviderServer(args.host, args.port, ProviderState())
    except OSError as error:
        LOGGER.error("failed to bind %s port %d: %s", args.host, args.port, error)
        return 1

    serve_thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    serve_thread.start()
    try:
        write_port_file(args.port_file, server.server_port)
    except OSError as error:
        LOGGER.error("failed to write port file %s: %s", args.port_file, error)
        server.shutdown()
        server.server_close()
        return 1
    LOGGER.info("listening on %s port %d, pid %d, max lifetime %g s",
                args.host, server.server_port, os.getpid(), args.max_lifetime)

    if stop_event.wait(args.max_lifetime):
        LOGGER.info("stopping after %s", stop_reasons[0])
    else:
        LOGGER.info("stopping after the max lifetime of %g s", args.max_lifetime)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
