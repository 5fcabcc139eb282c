"""`grasp-guard proxy`: what it refuses before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from grasp_guard.cli import ExitStatus, main


@pytest.mark.parametrize(
    ("policy", "flags", "message"),
    [
        ("sites:\n  - {name: a, hosts: ['*']}\n", [], "no enabled site names a host"),
        ("sites:\n  - {name: a, hosts: [x.com], preset: slow}\n", [], "field 'preset'"),
        ("sites:\n  - {name: a, hosts: [x.com]}\n", ["--timeout", "0"], "--timeout"),
        ("sites:\n  - {name: a, hosts: [x.com]}\n", ["--service-config", "s.yaml"],
         "--with-service only"),
    ],
)
def test_refuses_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 policy: str, flags: list[str], message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    assert main(["proxy", "--policy", str(path), *flags]) == ExitStatus.ERROR
    assert message in capsys.readouterr().err


def test_service_and_with_service_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["proxy", "--service", "http://a:1", "--with-service"])
    assert info.value.code == ExitStatus.USAGE
    assert "not allowed with" in capsys.readouterr().err
