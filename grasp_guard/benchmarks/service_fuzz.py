"""Fuzz the service's request path: fuzzed bodies through the real app, every answer judged.

The app is :func:`grasp_guard.service.create_app` with its default settings, served on
loopback by aiohttp's test server in this process, on :class:`FastEngine`: the engine with
its two model calls stubbed (the GRASP optimisation and the surrogate evaluation). Those are
seconds of GAN time per face on a CPU and read no request bytes; everything else is the
service's own code: the HTTP server, the upload and multipart reader, the options, the
decoder, the face detector, the crops, admission and the batching worker, the paste-back, the
re-encode with the original's metadata and the decode of the output.

An answer passes when it is a result (a 200 whose body decodes as the image type it names,
at the input's size, or the input itself, byte for byte, when nothing was protected) or a
JSON error (``{"error": {"kind", "message"}}``, a 4xx, or 503 with ``Retry-After``). The one
exception is a request whose head breaks aiohttp's own limits: its HTTP parser answers 400
or 431 in plain text before the app sees it. Everything else is a problem: a 500, another
answer, no answer, an error logged by the server, an exception left to the event loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import torch
from aiohttp import hdrs
from aiohttp.test_utils import TestClient, TestServer

from grasp_guard.benchmarks.fuzz_cases import FuzzCase, make_case
from grasp_guard.errors import GraspGuardError
from grasp_guard.media import decode
from grasp_guard.models.editor import Editor
from grasp_guard.pipeline import CropOutcome, CropTask, Engine
from grasp_guard.service import Settings, create_app

logger = logging.getLogger(__name__)

#: The seconds a case may take before it counts as unanswered (the service's deadline).
CASE_TIMEOUT_S = 150.0
_PARSER_STATUSES = frozenset({400, 413, 431})


class FastEngine(Engine):
    """The engine with its model calls stubbed: each crop comes back with a fixed ±2
    checkerboard added (so the paste-back and re-encode have a change to carry), and the
    evaluation reports no surrogate. Crops of mixed groups are still refused."""

    def warm_up(self) -> None:
        """Nothing to warm: no model runs."""

    def optimise(self, tasks: Sequence[CropTask], max_steps: int | None = None) -> list[CropOutcome]:
        if len({t.group_key for t in tasks}) != 1:
            raise ValueError("crops of one batch must share a group")
        return [CropOutcome(_nudge(t.crop), 0, 0.0, len(tasks)) for t in tasks]

    def evaluate(self, original: Sequence[np.ndarray],
                 protected: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        return [{} for _ in original]


def _nudge(crop: np.ndarray) -> np.ndarray:
    yy, xx = np.indices(crop.shape[:2])
    sign = np.where((yy + xx) % 2 == 0, 2, -2)[..., None]
    return np.clip(crop.astype(np.int16) + sign, 0, 255).astype(np.uint8)


def fuzz_app(editors: Sequence[Editor], settings: Settings | None = None) -> aiohttp.web.Application:
    """The service app on a :class:`FastEngine` over ``editors`` (on the CPU)."""
    return create_app(settings or Settings(),
                      engine_factory=lambda _: FastEngine(editors, torch.device("cpu")))


@dataclass(frozen=True)
class Answer:
    """What came back for a case: its status and body, or why nothing did."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    seconds: float
    failure: str | None = None


@dataclass(frozen=True)
class Verdict:
    """How an answer is counted: ``outcome`` is ``result``, ``unchanged``, ``json_error``,
    ``http_parser`` or ``problem``; ``label`` is the status and error kind."""

    outcome: str
    label: str
    problem: str | None = None


async def send(client: TestClient, case: FuzzCase, timeout_s: float = CASE_TIMEOUT_S) -> Answer:
    """Post ``case`` to ``/v1/protect`` and read the whole answer."""
    headers = dict(case.headers)
    skip: list[str] = []
    if case.content_type is None:
        skip.append(hdrs.CONTENT_TYPE)
    else:
        headers[hdrs.CONTENT_TYPE] = case.content_type
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            # A file object: aiohttp streams it (raw bytes past 1 MiB would block the loop).
            async with client.post("/v1/protect", params=list(case.query),
                                   data=io.BytesIO(case.body), headers=headers,
                                   skip_auto_headers=skip) as resp:
                body = await resp.read()
                return Answer(resp.status, dict(resp.headers), body, time.perf_counter() - start)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Answer(None, {}, b"", time.perf_counter() - start,
                      f"no answer: {type(exc).__name__}: {exc}")


def judge(case: FuzzCase, answer: Answer) -> Verdict:
    """Whether ``answer`` is a valid result or a JSON error (see the module docstring)."""
    if answer.status is None:
        return Verdict("problem", "no answer", answer.failure)
    ctype = answer.headers.get(hdrs.CONTENT_TYPE, "")
    if answer.status == 200:
        return _judge_result(case, answer, ctype)
    label = str(answer.status)
    if ctype.startswith("application/json"):
        try:
            error = json.loads(answer.body)["error"]
            kind, message = error["kind"], error["message"]
        except (ValueError, KeyError, TypeError):
            return Verdict("problem", label, f"a {label} whose JSON is not an error: "
                                             f"{answer.body[:200]!r}")
        label = f"{answer.status} {kind}"
        if not (isinstance(kind, str) and isinstance(message, str)):
            return Verdict("problem", label, f"error kind or message not text: {error!r}")
        if answer.status in (429, 503) and hdrs.RETRY_AFTER not in answer.headers:
            return Verdict("problem", label, "a refusal without Retry-After")
        if not (400 <= answer.status < 500 or answer.status == 503):
            return Verdict("problem", label, f"server error: {message}")
        return Verdict("json_error", label)
    if case.kind == "oversized_head" and answer.status in _PARSER_STATUSES:
        return Verdict("http_parser", f"{label} (aiohttp's HTTP parser)")
    return Verdict("problem", label, f"not JSON ({ctype!r}): {answer.body[:200]!r}")


def _judge_result(case: FuzzCase, answer: Answer, ctype: str) -> Verdict:
    try:
        report = json.loads(answer.headers["X-Grasp-Report"])
    except (KeyError, ValueError) as exc:
        return Verdict("problem", "200", f"no readable report header: {exc!r}")
    if not report.get("protected"):
        if case.image is not None and answer.body != case.image:
            return Verdict("problem", "200 unchanged", "an unprotected answer that is not "
                                                       "the input byte for byte")
        return Verdict("unchanged", "200 unchanged")
    try:
        out = decode(answer.body)
    except GraspGuardError as exc:
        return Verdict("problem", "200 protected", f"the result does not decode: {exc}")
    if out.mime != ctype:
        return Verdict("problem", "200 protected", f"a {out.format} result sent as {ctype!r}")
    if case.image is not None:
        try:
            source = decode(case.image)
        except GraspGuardError as exc:
            return Verdict("problem", "200 protected", f"protected an undecodable input: {exc}")
        if source.upright.shape != out.upright.shape:
            return Verdict("problem", "200 protected", f"result {out.upright.shape} from an "
                                                       f"input {source.upright.shape}")
    return Verdict("result", "200 protected")


class _ErrorLog(logging.Handler):
    """Keeps every record at ERROR or above (a handler that failed, an escaped exception)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self.records.append(f"{record.name}: {text}")


def _rss_mib() -> tuple[float, float]:
    """This process's resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
    values: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


@dataclass
class FuzzReport:
    """The tallies of a fuzz run."""

    cases: int = 0
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_label: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    slowest: tuple[float, int, str] = (0.0, -1, "")
    rss_mib: list[tuple[int, float]] = field(default_factory=list)
    peak_rss_mib: float = 0.0

    def add(self, case: FuzzCase, answer: Answer, verdict: Verdict) -> None:
        self.cases += 1
        self.by_kind[case.kind, verdict.outcome] += 1
        self.by_label[verdict.label] += 1
        if verdict.problem is not None:
            self.problems.append(f"case {case.index} ({case.kind}: {case.detail}): "
                                 f"{verdict.label}: {verdict.problem}")
        if answer.seconds > self.slowest[0]:
            self.slowest = (answer.seconds, case.index, case.kind)


async def fuzz(client: TestClient, cases: Iterable[FuzzCase], *,
               on_case: Callable[[FuzzCase, Answer, Verdict], None] | None = None,
               rss_every: int = 500) -> FuzzReport:
    """Send each case in turn through ``client`` and judge its answer.

    Server-side errors logged at ERROR and exceptions handed to the event loop's handler
    count as problems of the case running when they appeared.
    """
    report = FuzzReport()
    errors = _ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.records.append(
        f"event loop: {context.get('message')}: {context.get('exception')!r}"))
    start = time.perf_counter()
    try:
        for case in cases:
            seen = len(errors.records)
            answer = await send(client, case)
            verdict = judge(case, answer)
            report.add(case, answer, verdict)
            logged = errors.records[seen:]
            if verdict.outcome == "http_parser":  # aiohttp logs the head it refused
                logged = [r for r in logged if not r.startswith("aiohttp.server:")]
            report.problems += [f"case {case.index} ({case.kind}: {case.detail}): logged: {r}"
                                for r in logged]
            if on_case is not None:
                on_case(case, answer, verdict)
            if report.cases % rss_every == 0:
                report.rss_mib.append((report.cases, _rss_mib()[0]))
    finally:
        root.removeHandler(errors)
        loop.set_exception_handler(previous_handler)
    report.seconds = time.perf_counter() - start
    report.peak_rss_mib = _rss_mib()[1]
    return report


async def run(editors: Sequence[Editor], seed: int, count: int, start: int = 0, *,
              on_case: Callable[[FuzzCase, Answer, Verdict], None] | None = None) -> FuzzReport:
    """Serve the app on loopback, wait until it is ready, and fuzz cases ``start`` to
    ``start + count`` of ``seed``."""
    async with TestClient(TestServer(fuzz_app(editors))) as client:
        for _ in range(600):
            if (await client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the service never became ready")
        cases = (make_case(seed, i) for i in range(start, start + count))
        return await fuzz(client, cases, on_case=on_case)



OUTCOMES = ("result", "unchanged", "json_error", "http_parser", "problem")


def markdown(report: FuzzReport, info: dict[str, Any]) -> str:
    """The run as a results section: provenance, the totals, the tallies, the problems."""
    outcomes: Counter[str] = Counter()
    for (_, outcome), n in report.by_kind.items():
        outcomes[outcome] += n
    rss = ", ".join(f"{n}: {mib:.0f}" for n, mib in report.rss_mib) or "none sampled"
    measures = [
        ("cases sent", report.cases),
        ("problems (500, non-JSON error, bad result, no answer, error logged)",
         len(report.problems)),
        ("results: protected / unchanged (byte-identical)",
         f"{outcomes['result']} / {outcomes['unchanged']}"),
        ("JSON errors", outcomes["json_error"]),
        ("refused by aiohttp's HTTP parser before the app (oversized head; plain text)",
         outcomes["http_parser"]),
        ("wall (s) / cases per second",
         f"{report.seconds:.0f} / {report.cases / max(report.seconds, 1e-9):.1f}"),
        ("slowest case (s, index, kind)",
         f"{report.slowest[0]:.1f}, {report.slowest[1]}, {report.slowest[2]}"),
        ("peak RSS, fuzzer and service in one process (MiB, VmHWM)",
         f"{report.peak_rss_mib:.0f}"),
        ("RSS after N cases (MiB)", rss),
    ]
    lines = [
        "## Fuzzed request bodies through the service (`grasp-guard bench fuzz`)",
        "",
        *(f"- {key}: `{value}`" for key, value in info.items()),
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {measure} | {value} |" for measure, value in measures),
        "",
        "| answer | count |",
        "|---|---|",
        *(f"| {label} | {n} |" for label, n in sorted(report.by_label.items(),
                                                      key=lambda kv: (-kv[1], kv[0]))),
        "",
        "| case kind | cases | " + " | ".join(OUTCOMES) + " |",
        "|---|---|" + "---|" * len(OUTCOMES),
    ]
    for kind in sorted({k for k, _ in report.by_kind}):
        counts = [report.by_kind[kind, o] for o in OUTCOMES]
        lines.append(f"| {kind} | {sum(counts)} | " + " | ".join(map(str, counts)) + " |")
    if report.problems:
        lines += ["", "Problems (first 20):", *(f"- {p}" for p in report.problems[:20])]
    return "\n".join(lines) + "\n"
