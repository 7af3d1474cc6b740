"""A history as CSV and JSON Lines: every cell and every entry comes back, nothing runs."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sidecar.core.codec import decode_document, decode_entry
from sidecar.core.history_export import (
    FORMULA_STARTS,
    CsvColumns,
    csv_cell,
    csv_pieces,
    jsonl_pieces,
)

hostile_text = st.one_of(
    st.text(max_size=12),
    st.builds(
        str.__add__,
        st.sampled_from([*FORMULA_STARTS, "'", '"', ",", "\n", "\r\n", " ", "\x00", "\u2028"]),
        st.text(max_size=8),
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**30), 10**30),
    st.floats(),  # NaN and infinities among them: the boundary nulls them
    hostile_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=10,
)
objects = st.dictionaries(
    st.one_of(st.just("step"), st.sampled_from(["loss", "lr", "a,b"]), hostile_text),
    json_values,
    max_size=6,
)


def kept(objects: list[dict[str, Any]]) -> list[bytes]:
    """The entries as the sidecar keeps them: through the boundary."""
    return [decode_entry(json.dumps(o).encode()) for o in objects]


def csv_rows(entries: list[bytes], **options: Any) -> list[list[str]]:
    body = b"".join(csv_pieces(entries, **options))
    assert body.endswith(b"\r\n")
    return list(csv.reader(io.StringIO(body.decode(), newline="")))


def expected_cell(value: Any) -> str:
    """What a spreadsheet should find in a value's cell, written out plainly."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@given(st.lists(objects, max_size=8))
@example([{"step": 1, "=cmd|' /C calc'!A0": "-2+3", "a,b": 'say "hi"\r\nbye'}])
@example([{"x": "@SUM(1)"}, {"step": -1.5e-07, "x": "\tpadded"}, {"x": "\r=1"}])
@example([{"": ""}, {"step": {"nested": [1, "=2"]}}])
def test_csv_parses_back_into_the_same_cells(objects: list[dict[str, Any]]) -> None:
    entries = kept(objects)
    values = [json.loads(e) for e in entries]
    keys = ["step"]
    for value in values:
        keys += [key for key in value if key not in keys]
    rows = csv_rows(entries)
    assert rows[0] == [expected_cell(key) for key in keys]
    assert rows[1:] == [[expected_cell(value.get(key)) for key in keys] for value in values]


@given(st.lists(objects, max_size=8))
def test_no_csv_cell_starts_a_formula_unless_it_is_a_number(
    objects: list[dict[str, Any]],
) -> None:
    for row in csv_rows(kept(objects)):
        for cell in row:
            if cell.startswith(FORMULA_STARTS):
                assert isinstance(json.loads(cell), int | float), cell


@given(st.lists(objects, max_size=8))
@example([{"text": "line\u2028separator\nand newline"}])
def test_jsonl_parses_back_into_the_same_entries(objects: list[dict[str, Any]]) -> None:
    entries = kept(objects)
    body = b"".join(jsonl_pieces(entries))
    lines = body.split(b"\n")
    assert lines[-1] == b""
    assert [decode_document(line) for line in lines[:-1]] == [json.loads(e) for e in entries]


def test_csv_columns_are_step_then_keys_in_order_of_first_appearance() -> None:
    entries = kept([{"loss": 2.0, "step": 1}, {"step": 2, "eval_loss": 1.5, "loss": 1.8}, {}])
    assert b"".join(csv_pieces(entries)) == (
        b"step,loss,eval_loss\r\n1,2.0,\r\n2,1.8,1.5\r\n,,\r\n"
    )


def test_csv_of_no_entries_is_the_header_alone() -> None:
    assert b"".join(csv_pieces([])) == b"step\r\n"


def test_csv_cells_of_each_kind() -> None:
    assert [csv_cell(v) for v in (None, True, False, 0, -3, 1.5e-07, 2**62, "", "x")] == [
        *("", "true", "false", "0", "-3", "1.5e-07", str(2**62), "", "x")
    ]
    assert csv_cell({"a": [1, None, "é"]}) == '{"a":[1,null,"é"]}'
    assert csv_cell([]) == "[]"
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_cell(start + "1") == "'" + start + "1"
    assert csv_cell("'=quoted already") == "'=quoted already"
    assert csv_cell(" =1") == " =1"  # only the very first character counts (OWASP)


def test_csv_columns_past_the_cap_are_left_out() -> None:
    objects = [{"step": 0, "a": 1}, {"b": 2, "c": 3, "a": 4}, {"d": 5, "step": 6}]
    rows = csv_rows(kept(objects), max_columns=3)
    assert rows == [["step", "a", "b"], ["0", "1", ""], ["", "4", "2"], ["6", "", ""]]
    columns = CsvColumns(max_columns=3)
    for entry in objects[:2]:
        columns.see(entry)
    assert list(columns.index) == ["step", "a", "b"] and columns.left_out


def test_csv_of_many_distinct_keys_stops_at_a_thousand_columns() -> None:
    objects = [{f"k{i}": i} for i in range(1500)]
    rows = csv_rows(kept(objects))
    assert rows[0] == ["step", *(f"k{i}" for i in range(999))]
    assert len(rows) == 1501 and all(len(row) == 1000 for row in rows)
    assert rows[999][999] == "998" and rows[1000] == [""] * 1000


def test_csv_pieces_come_an_entry_at_a_time() -> None:
    """One piece per entry looked at, the header, then one per row: the caller may pause
    between any two."""
    entries = kept([{"step": i} for i in range(5)])
    pieces = list(csv_pieces(entries))
    assert pieces[:5] == [b""] * 5 and pieces[5] == b"step\r\n"
    assert pieces[6:] == [b"%d\r\n" % i for i in range(5)]
