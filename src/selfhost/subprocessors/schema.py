"""The JSON Schema of the list's JSON form, generated from the model.

The committed copy is ``schemas/subprocessor-list.v1.schema.json``; regenerate
it after changing :class:`SubprocessorList` (a unit test fails until then)::

    python -m selfhost.subprocessors.schema schemas/subprocessor-list.v1.schema.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from selfhost.subprocessors.document import SCHEMA_VERSION, SubprocessorList, dump_json

SCHEMA_FILE = f"subprocessor-list.v{SCHEMA_VERSION}.schema.json"


def json_schema() -> dict[str, Any]:
    schema = SubprocessorList.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://selfhost.backend.chat/schemas/{SCHEMA_FILE}",
        **schema,
    }


def schema_text() -> str:
    return dump_json(json_schema())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write(f"usage: python -m selfhost.subprocessors.schema {SCHEMA_FILE}\n")
        return 2
    Path(argv[0]).write_text(schema_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
