"""Reading an import file row by row with the byte offset after each row, so that an
interrupted import can seek straight past what was committed."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import parse_json
from pushgate.toolbox.rows import Column, Reason, csv_document, json_document, parse_header

HEAD_BYTES = 65536  # hashed to tell a different file at the same path


class FileError(ValueError):
    """The file cannot be read as its format: nothing more is read from it."""


@dataclass(frozen=True, slots=True)
class FileIdentity:
    size: int
    mtime_ns: int
    head_sha256: str


def identify(path: Path) -> FileIdentity:
    stat = path.stat()
    with path.open("rb") as f:
        head = hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()
    return FileIdentity(stat.st_size, stat.st_mtime_ns, head)


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".csv":
        return "csv"
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise FileError(f"{path.name}: cannot tell the format from the name; pass --format csv|jsonl")


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based among the file's data rows (a CSV header is not one)
    line: int  # the line where it starts
    raw: Any  # as read: {header: cell} for CSV, the JSON value or the line's text for JSON lines
    doc: dict[str, Any]
    reasons: list[Reason]  # why the row cannot be read (the rules are checked later)
    end: int  # the byte offset just after it
    lines: int  # lines read through it


@dataclass(frozen=True, slots=True)
class Position:
    """Where reading resumes: just after the last committed row."""

    offset: int = 0
    rows: int = 0
    lines: int = 0


class _Lines:
    """A binary file's lines as text, counting bytes and lines as csv.reader pulls them
    (the reader pulls exactly the lines of one record, no more, so after each record
    `offset` is where the next one starts)."""

    def __init__(self, f: BinaryIO, offset: int, lines: int) -> None:
        self.f = f
        self.offset = offset
        self.lines = lines

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.f.readline()
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.lines += 1
        try:
            # utf-8-sig only at the start: a BOM written by a spreadsheet is not a character.
            return raw.decode("utf-8-sig" if self.offset == len(raw) else "utf-8")
        except UnicodeDecodeError:
            raise FileError(f"line {self.lines} is not UTF-8; save the file as UTF-8") from None


def read_header(path: Path, delimiter: str) -> tuple[list[Column], list[str], int, int]:
    """The CSV's columns, its header cells, and the offset and line count after the header."""
    with path.open("rb") as f:
        lines = _Lines(f, 0, 0)
        try:
            header = next(csv.reader(lines, delimiter=delimiter))
        except StopIteration:
            raise FileError("the file is empty: a CSV import needs a header row") from None
        except csv.Error as exc:
            raise FileError(f"header: {exc}") from None
        return parse_header(header), header, lines.offset, lines.lines


def read_csv(path: Path, start: Position, delimiter: str = ",") -> Iterator[Row]:
    columns, header, header_end, header_lines = read_header(path, delimiter)
    if start.offset < header_end:
        start = Position(header_end, 0, header_lines)
    number = start.rows
    with path.open("rb") as f:
        f.seek(start.offset)
        lines = _Lines(f, start.offset, start.lines)
        reader = csv.reader(lines, delimiter=delimiter)
        while True:
            first_line = lines.lines + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileError(f"line {lines.lines}: {exc}") from None
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line is no row
            number += 1
            doc, reasons = csv_document(columns, cells)
            raw: dict[str, Any] = dict(zip(header, cells, strict=False))
            if len(cells) > len(header):
                raw["..."] = cells[len(header) :]
            yield Row(number, first_line, raw, doc, reasons, lines.offset, lines.lines)


def read_jsonl(path: Path, start: Position) -> Iterator[Row]:
    number, line, offset = start.rows, start.lines, start.offset
    with path.open("rb") as f:
        f.seek(offset)
        for raw in f:
            offset += len(raw)
            line += 1
            text = raw.strip()
            if not text:
                continue
            number += 1
            try:
                value = parse_json(text)  # the endpoints' own: a NUL character is not JSON
            except ApiError as exc:
                shown = text.decode("utf-8", "replace")
                detail = exc.message.removeprefix("request body is not valid JSON: ")
                reason = Reason("row.json", f"not valid JSON: {detail}")
                yield Row(number, line, shown, {}, [reason], offset, line)
                continue
            doc, reasons = json_document(value)
            yield Row(number, line, value, doc, reasons, offset, line)


def read_rows(path: Path, fmt: str, start: Position, delimiter: str = ",") -> Iterator[Row]:
    if fmt == "csv":
        return read_csv(path, start, delimiter)
    return read_jsonl(path, start)
