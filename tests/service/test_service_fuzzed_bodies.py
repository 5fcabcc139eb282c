"""200 fuzzed requests through the real app: each answer a result or a JSON error.

The fast version of ``grasp-guard bench fuzz`` (10,000 cases, figures in
``bench/results/service.md``); the model calls are stubbed (:class:`FastEngine`).
"""

from __future__ import annotations

from typing import Any

from _service_helpers import wait_ready

from grasp_guard.benchmarks.fuzz_cases import make_case
from grasp_guard.benchmarks.service_fuzz import fuzz, fuzz_app
from grasp_guard.models.editor import Editor


async def test_fuzzed_requests_get_a_result_or_a_json_error(aiohttp_client: Any,
                                                           editors: list[Editor]) -> None:
    client = await aiohttp_client(fuzz_app(editors))
    await wait_ready(client)
    report = await fuzz(client, (make_case(0, i) for i in range(200)))
    assert report.problems == []
    assert report.cases == 200
    outcomes = {outcome for _, outcome in report.by_kind}
    assert {"result", "unchanged", "json_error"} <= outcomes  # the whole path was reached
    assert {"200 protected", "400 invalid_image", "400 invalid_options",
            "415 unsupported_format"} <= set(report.by_label)
