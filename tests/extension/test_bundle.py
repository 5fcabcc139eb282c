"""The bundler: ES modules into one classic script that runs them once each, in order."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from grasp_guard.errors import ConfigError
from grasp_guard.extension.bundle import bundle

NODE = shutil.which("node")

MODULES = {
    "lib/util.js": 'export const ONE = 1;\nexport function twice(x) { return 2 * x; }\n'
                   'const hidden = "private";\nexport class Box { constructor(v) { this.v = v; } }\n',
    "lib/more.js": 'import { ONE, twice as double } from "./util.js";\n'
                   'export async function three() { return double(ONE) + ONE; }\n',
    "lib/index.js": 'export { ONE, Box } from "./util.js";\nexport * as more from "./more.js";\n',
    "entry.js": '/** @type {import("./lib/index.js").Box} */\n'
                'import {\n  Box,\n  more,\n} from "./lib/index.js";\nimport * as util from "./lib/util.js";\n'
                'more.three().then((n) => console.log(JSON.stringify({n, box: new Box(util.ONE).v, '
                'hidden: typeof hidden, leaked: typeof ONE})));\n',
}


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder / "entry.js"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_bundle_runs_every_module_once_in_order_and_leaks_nothing(tmp_path: Path) -> None:
    script = tmp_path / "bundle.js"
    script.write_text(bundle(write(tmp_path, MODULES)), encoding="utf-8")
    assert NODE is not None
    run = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=60,
                         check=True)
    assert run.stdout.strip() == '{"n":3,"box":1,"hidden":"undefined","leaked":"undefined"}'


def test_each_module_appears_once_after_its_imports(tmp_path: Path) -> None:
    text = bundle(write(tmp_path, MODULES))
    order = [line.removeprefix("// ---- ") for line in text.splitlines() if line.startswith("// ---- ")]
    assert order == ["lib/util.js", "lib/more.js", "lib/index.js", "entry.js"]
    assert "\nimport " not in text and "\nexport " not in text


@pytest.mark.parametrize("source,message", [
    ('export default function f() {}\n', r"entry\.js:2: cannot bundle 'export default"),
    ('const a = 1;\nexport { a };\n', r"entry\.js:3: cannot bundle 'export \{ a \};'"),
    ('export * from "./lib/util.js";\n', r"cannot bundle 'export \*"),
    ('import x from "./lib/util.js";\n', r"cannot bundle 'import x"),
    ('import { a } from "./missing.js";\n', r"imports .*missing\.js, which does not exist"),
])
def test_what_it_cannot_bundle_is_refused_with_the_line(tmp_path: Path, source: str,
                                                         message: str) -> None:
    entry = write(tmp_path, {**MODULES, "entry.js": "// first\n" + source})
    with pytest.raises(ConfigError, match=message):
        bundle(entry)


def test_an_import_cycle_is_refused(tmp_path: Path) -> None:
    entry = write(tmp_path, {"entry.js": 'import { b } from "./b.js";\n',
                             "b.js": 'import { a } from "./entry.js";\nexport const b = 1;\n'})
    with pytest.raises(ConfigError, match=r"import cycle: entry\.js -> b\.js -> entry\.js"):
        bundle(entry)
