"""The kit's relational helpers on a real SQLite file: write locks, upserts, schema races."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

from llmops_kit import db

pytestmark = pytest.mark.unit

meta = MetaData()
counters = Table("counters", meta, Column("name", String(32), primary_key=True),
                 Column("value", Integer, nullable=False))


def test_writer_serialises_read_then_write_on_sqlite(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/nested/dir/kit.db")
    db.create_schema(meta, engine)
    with Session(engine) as s, s.begin():
        s.execute(counters.insert().values(name="n", value=0))

    def bump(times: int) -> None:
        for _ in range(times):
            with Session(db.writer(engine)) as s, s.begin():
                value = s.scalar(select(counters.c.value).where(counters.c.name == "n"))
                s.execute(counters.update().where(counters.c.name == "n").values(value=value + 1))

    threads = [threading.Thread(target=bump, args=(50,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as s:
        assert s.scalar(select(counters.c.value)) == 200  # no lost update


def test_insert_ignore_and_upsert(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/kit.db")
    db.create_schema(meta, engine)
    db.create_schema(meta, engine)  # idempotent
    with Session(engine) as s, s.begin():
        s.execute(db.insert_ignore(engine, counters, {"name": "a", "value": 1}))
        s.execute(db.insert_ignore(engine, counters, {"name": "a", "value": 2}))
    with Session(engine) as s:
        assert s.scalar(select(counters.c.value).where(counters.c.name == "a")) == 1
    with Session(engine) as s, s.begin():
        s.execute(db.upsert(engine, counters, {"name": "a", "value": 7}, ["name"]))
        s.execute(db.upsert(engine, counters, {"name": "b", "value": 3}, ["name"]))
    with Session(engine) as s:
        assert dict(s.execute(select(counters.c.name, counters.c.value)).all()) == {"a": 7, "b": 3}
