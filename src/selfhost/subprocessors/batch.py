"""``selfhost subprocessors batch``: one list per prospect, for sales engineers.

A prospects file is CSV (a header row, then one prospect a row) or YAML (a list
of mappings). Each prospect names a base ``preset`` (a profile in the presets
directory) and sets profile keys by their dotted names (``customer.name``,
``ai.provider``); a value is read exactly like ``selfhost init --set`` reads
it (a YAML scalar or flow collection) and an empty CSV cell leaves the preset's
value. Each prospect is then validated by the one Profile model.

A prospect that fails is reported with its row and field and the others are
still written: ``DIR/<customer.id>-subprocessors.<ext>`` per format, and
``DIR/summary.csv`` with one line per prospect.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from selfhost import inputs, questions
from selfhost.answers import parse_set, refuse_secret_key
from selfhost.catalog import TO_BE_CONFIRMED, UNKNOWN
from selfhost.errors import InvalidInput, SelfhostError
from selfhost.i18n import DEFAULT, Lang
from selfhost.paths import PROFILES_DIR
from selfhost.plan import plan
from selfhost.profile_io import LineMap, load_profile_data, load_yaml, model_findings
from selfhost.subprocessors.document import SubprocessorList, build_document, outside_residency
from selfhost.subprocessors.files import EXTENSIONS, Format, write_file
from selfhost.subprocessors.prospect import prospect_data
from selfhost.subprocessors.render import render

SUMMARY_FILE = "summary.csv"
PRESET_COLUMN = "preset"


@dataclass(frozen=True)
class Prospect:
    row: int
    line: int
    preset: str
    #: dotted key -> value (a string from CSV, any YAML value from YAML)
    values: dict[str, Any]


@dataclass
class RowResult:
    row: int
    line: int
    customer_id: str = ""
    customer_name: str = ""
    residency: str = ""
    subprocessors: list[str] = field(default_factory=list)
    #: the vendors' names, in the list's order
    vendors: list[str] = field(default_factory=list)
    #: one text per subprocessor that receives data outside the residency (or whose
    #: data location is still to be confirmed): name, where, under which safeguard
    transfers: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class BatchResult:
    rows: list[RowResult]
    summary: Path

    @property
    def failed(self) -> list[RowResult]:
        return [r for r in self.rows if not r.ok]


@dataclass(frozen=True)
class _Job:
    source: str
    presets: dict[str, dict[str, Any]]
    output_dir: Path
    formats: tuple[Format, ...]
    on: date
    lang: Lang
    #: every preset name in the presets directory, for error messages
    available: tuple[str, ...]


# -- reading ------------------------------------------------------------------------

def read_prospects(path: Path) -> list[Prospect]:
    try:
        text = inputs.read_text(path, inputs.TEXT_LIMIT, encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the prospects file ({exc.strerror}; give "
                           "the path of a CSV or YAML file)") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text (save the file as UTF-8 CSV)") from None
    if path.suffix.lower() == ".csv":
        return _read_csv(text, path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _read_yaml(text, path)
    raise InvalidInput(f"{path}: unknown prospects format (name the file .csv, .yaml or "
                       ".yml)")


def _read_csv(text: str, path: Path) -> list[Prospect]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    if PRESET_COLUMN not in header:
        raise InvalidInput(f"{path}:1: the header has no '{PRESET_COLUMN}' column (add it: "
                           "the base preset of each prospect, e.g. us-openai)")
    empty = [i + 1 for i, name in enumerate(header) if not name]
    if empty:
        raise InvalidInput(f"{path}:1: column {empty[0]} has no name (name every column "
                           "with a dotted profile key such as customer.name)")
    out: list[Prospect] = []
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            # An oversized or malformed cell fails its own row; the reader goes on
            # with the next line.
            out.append(Prospect(row=len(out) + 1, line=reader.line_num, preset="",
                                values={"(row)": f"{exc} (shorten the cell)"}))
            continue
        if cells is None:
            break
        if not any(c.strip() for c in cells):
            continue
        row = len(out) + 1
        values: dict[str, Any] = {k: v for k, v in zip(header, cells, strict=False)
                                  if v.strip() != ""}
        if len(cells) > len(header):
            values["(extra cells)"] = cells[len(header):]
        preset = str(values.pop(PRESET_COLUMN, "")).strip()
        out.append(Prospect(row=row, line=reader.line_num, preset=preset, values=values))
    return out


def _read_yaml(text: str, path: Path) -> list[Prospect]:
    data = load_yaml(text, str(path))
    if not isinstance(data, CommentedSeq):
        raise InvalidInput(f"{path}:1: expected a list of prospects (- preset: us-openai\\n"
                           "  customer.name: ...)")
    out: list[Prospect] = []
    for index, item in enumerate(data):
        line = data.lc.item(index)[0] + 1
        if not isinstance(item, CommentedMap):
            out.append(Prospect(row=index + 1, line=line, preset="",
                                values={"(row)": "not a mapping (write each prospect as "
                                                 "- preset: NAME with its keys below)"}))
            continue
        values = {str(k): _plain(v) for k, v in item.items()}
        preset = str(values.pop(PRESET_COLUMN, "") or "").strip()
        out.append(Prospect(row=index + 1, line=line, preset=preset, values=values))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def load_presets(profiles_dir: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The named presets that exist, as plain data (each file read once)."""
    out = {}
    for name in sorted(set(names)):
        path = profiles_dir / f"{name}.yaml"
        if name and "/" not in name and path.is_file():
            out[name] = load_profile_data(path)[0]
    return out


# -- one prospect -------------------------------------------------------------------

def _profile_data(prospect: Prospect, job: _Job, where: str) -> dict[str, Any]:
    if "(row)" in prospect.values:  # the row could not be read at all
        raise InvalidInput(f"{where}: {prospect.values['(row)']}")
    if prospect.preset not in job.presets:
        problem = f"unknown preset {prospect.preset!r}" if prospect.preset else "missing"
        raise InvalidInput(f"{where}: {PRESET_COLUMN}: {problem} (choose one of: "
                           f"{', '.join(job.available)})")
    data = copy.deepcopy(job.presets[prospect.preset])
    for key, raw in prospect.values.items():
        if key.startswith("("):
            raise InvalidInput(f"{where}: {key}: {raw} (each row needs as many cells as "
                               "the header has columns)")
        refuse_secret_key(key, f"{where}: column")
        value = cell_value(key, raw) if isinstance(raw, str) else raw
        try:
            questions.put(data, key, value)
        except ValueError as exc:
            raise InvalidInput(f"{where}: {key}: {exc}") from None
    return data


#: text the YAML parser reads back as the same string (no number, flag, null,
#: quote, flow collection, comment or mapping): skipping the parser for it is
#: the same result, and most cells are such text
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 .@_+-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def cell_value(key: str, raw: str) -> Any:
    """A CSV cell's value, read exactly as ``selfhost init --set key=raw`` reads it."""
    text = raw.strip()
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return copy.deepcopy(_parsed(key, raw))


@functools.lru_cache(maxsize=4096)
def _parsed(key: str, raw: str) -> Any:
    return parse_set(f"{key}={raw}")[1]


def _process(prospect: Prospect, job: _Job) -> RowResult:
    result = RowResult(row=prospect.row, line=prospect.line)
    where = f"{job.source}:{prospect.line}: row {prospect.row}"
    try:
        data = _profile_data(prospect, job, where)
    except SelfhostError as exc:
        result.errors.append(exc.message)
        return result
    profile, findings = model_findings(prospect_data(data), LineMap(), job.source)
    if profile is None:
        result.errors += [f"{where}: {f.path}: {f.message}" for f in findings]
        return result
    result.customer_id, result.customer_name = profile.customer.id, profile.customer.name
    doc = build_document(plan(profile), on=job.on, lang=job.lang)
    result.residency = doc.customer.residency
    result.subprocessors = [s.id for s in doc.subprocessors]
    result.vendors = [s.facts.name for s in doc.subprocessors]
    result.transfers = transfers(doc)
    for fmt in job.formats:
        target = job.output_dir / f"{profile.customer.id}-subprocessors.{EXTENSIONS[fmt]}"
        try:
            write_file(target, render(doc, fmt, job.lang).encode("utf-8"), durable=False)
        except SelfhostError as exc:
            result.errors.append(f"{where}: {exc.message}")
            return result
        result.files.append(target)
    return result


# -- the batch ----------------------------------------------------------------------

def _duplicates(prospects: list[Prospect], presets: dict[str, dict[str, Any]],
                source: str) -> dict[int, str]:
    """Rows whose customer.id an earlier row already uses (their files would collide)."""
    rows: dict[str, list[Prospect]] = {}
    for p in prospects:
        value = _customer_id(p, presets)
        if value is not None:  # without one, the row fails validation on its own
            rows.setdefault(str(value).strip(), []).append(p)
    out = {}
    for cid, sharing in rows.items():
        if len(sharing) < 2:
            continue
        # Every row is reported: writing any one of them would make its list look
        # like the list of the others.
        for p in sharing:
            others = ", ".join(str(o.row) for o in sharing if o is not p)
            out[p.row] = (f"{source}:{p.line}: row {p.row}: customer.id: {cid!r} is also "
                          f"the id of row {others} (give each prospect its own customer.id)")
    return out


def _customer_id(p: Prospect, presets: dict[str, dict[str, Any]]) -> Any:
    """The customer id a prospect ends with, however it is written: a
    ``customer.id`` column, a nested ``customer: {id: ...}``, or the preset's."""
    if "customer.id" in p.values:
        return p.values["customer.id"]
    nested = p.values.get("customer")
    if isinstance(nested, dict) and "id" in nested:
        return nested["id"]
    return presets.get(p.preset, {}).get("customer", {}).get("id")


def run_batch(prospects_path: Path, output_dir: Path, *, formats: tuple[Format, ...],
              on: date, profiles_dir: Path = PROFILES_DIR,
              lang: Lang = DEFAULT) -> BatchResult:
    """Write every valid prospect's list and the summary; report the others."""
    if not formats:
        raise InvalidInput("no output format chosen (pass --format md, html or json)")
    if not profiles_dir.is_dir():
        raise InvalidInput(f"{profiles_dir}: the presets directory does not exist (pass "
                           "--profiles-dir)")
    prospects = read_prospects(prospects_path)
    if not prospects:
        raise InvalidInput(f"{prospects_path}: no prospects in the file (add one row per "
                           "prospect)")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"{output_dir}: cannot create the output directory "
                           f"({exc.strerror}; choose another --output-dir)") from None
    presets = load_presets(profiles_dir, (p.preset for p in prospects))
    job = _Job(source=str(prospects_path), presets=presets, output_dir=output_dir,
               formats=formats, on=on, lang=lang,
               available=tuple(sorted(p.stem for p in profiles_dir.glob("*.yaml"))))
    duplicates = _duplicates(prospects, presets, job.source)
    todo = [p for p in prospects if p.row not in duplicates]
    results = {r.row: r for r in (_process(p, job) for p in todo)}
    for row, message in duplicates.items():
        prospect = prospects[row - 1]
        results[row] = RowResult(row=row, line=prospect.line, errors=[message])
    rows = [results[p.row] for p in prospects]
    summary = output_dir / SUMMARY_FILE
    write_file(summary, _summary_csv(rows, output_dir).encode("utf-8"))
    return BatchResult(rows=rows, summary=summary)


#: a cell starting with one of these is run as a formula by spreadsheets (TAB and CR
#: too: some strip them and then see the = behind)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never runs: ``'`` before a formula start."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def transfers(doc: SubprocessorList) -> list[str]:
    """Each subprocessor that receives data outside the customer's residency, as
    ``Name: CODES (safeguard; safeguard)``; a data location not yet confirmed
    is ``Name: location to be confirmed``. Codes and safeguards as the catalog
    gives them, so the cells read the same in every language."""
    out = []
    for sub in doc.subprocessors:
        t = sub.transfer
        if t.status == "to-be-confirmed":
            out.append(f"{sub.facts.name}: location {TO_BE_CONFIRMED}")
        elif t.status == "international" and isinstance(t.locations, list):
            safeguards = TO_BE_CONFIRMED if t.safeguards == UNKNOWN else "; ".join(t.safeguards)
            codes = " ".join(outside_residency(t.residency, t.locations))
            out.append(f"{sub.facts.name}: {codes} ({safeguards})")
    return out


def _summary_csv(rows: list[RowResult], output_dir: Path) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "line", "status", "customer_id", "customer_name",
                     "subprocessors", "files", "errors", "residency", "vendors",
                     "transfers_outside_residency"])
    for r in rows:
        status: Literal["ok", "failed"] = "ok" if r.ok else "failed"
        writer.writerow([_cell(cell) for cell in (
            r.row, r.line, status, r.customer_id, r.customer_name,
            " ".join(r.subprocessors) or "none" if r.ok else "",
            " ".join(str(f.relative_to(output_dir)) for f in r.files),
            " | ".join(r.errors), r.residency,
            " | ".join(r.vendors) or "none" if r.ok else "",
            " | ".join(r.transfers) or "none" if r.ok else "")])
    return buffer.getvalue()
