"""SQLAlchemy's ORM against `hb serve`: create_all() of models with serial
integer primary keys, a foreign key and a relationship, an index, server
defaults; then add/commit/query/update/delete through a Session.

Usage: python3 sqlalchemy_orm.py PORT DATABASE
Exits non-zero with the failing check on stderr; prints "ok" on success.
"""
import sys
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

port, db = sys.argv[1], sys.argv[2]
engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/{db}")


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), index=True)
    country: Mapped[str] = mapped_column(sa.String(2), server_default="NL")
    books: Mapped[list["Book"]] = relationship(back_populates="author", cascade="all, delete-orphan", order_by="Book.id")


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    pages: Mapped[int | None]
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("author.id"), index=True)
    author: Mapped[Author] = relationship(back_populates="books")


class Device(Base):
    """A uuid primary key generated client-side (SQLAlchemy's `Uuid`, bound
    and read as `uuid.UUID`), beside one the server generates."""
    __tablename__ = "device"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token: Mapped[uuid.UUID] = mapped_column(server_default=sa.text("gen_random_uuid()"))
    label: Mapped[str] = mapped_column(sa.String(40))


Base.metadata.create_all(engine)
inspector = sa.inspect(engine)
assert {"author", "book"} <= set(inspector.get_table_names()), inspector.get_table_names()
assert [c["name"] for c in inspector.get_columns("book")] == ["id", "title", "pages", "author_id"], inspector.get_columns("book")
# Keys and indexes reflect as Postgres reflects them (pg_constraint, pg_index, unnest/generate_subscripts of indkey).
pk = inspector.get_pk_constraint("book")
assert pk["constrained_columns"] == ["id"] and pk["name"] == "book_pkey", pk
indexes = {i["name"]: i for i in inspector.get_indexes("book")}
assert indexes["ix_book_author_id"]["column_names"] == ["author_id"] and not indexes["ix_book_author_id"]["unique"], indexes
assert "book_pkey" not in indexes, indexes
indexes = {i["name"]: i for i in inspector.get_indexes("author")}
assert indexes["ix_author_name"]["column_names"] == ["name"], indexes
assert inspector.get_unique_constraints("book") == [], inspector.get_unique_constraints("book")
# create_all a second time finds the tables and creates nothing.
Base.metadata.create_all(engine)

with Session(engine) as session:
    ann = Author(name="Ann", books=[Book(title="First", pages=100), Book(title="Second")])
    bob = Author(name="Bob", country="BE")
    session.add_all([ann, bob])
    session.commit()
    # Autoincrement ids came back from INSERT … RETURNING, in order.
    assert (ann.id, bob.id) == (1, 2), (ann.id, bob.id)
    assert [b.id for b in ann.books] == [1, 2], [b.id for b in ann.books]
    assert ann.country == "NL", ann.country

with Session(engine) as session:
    ann = session.scalars(sa.select(Author).where(Author.name == "Ann")).one()
    assert [b.title for b in ann.books] == ["First", "Second"]
    assert session.get(Book, 2).author.name == "Ann"
    # Update through the unit of work (the rowcount is checked by SQLAlchemy).
    ann.books[1].pages = 250
    session.commit()
    assert session.scalar(sa.select(Book.pages).where(Book.id == 2)) == 250
    # A book whose author does not exist is refused by the foreign key.
    session.add(Book(title="Orphan", author_id=99))
    try:
        session.commit()
        raise AssertionError("a dangling foreign key was accepted")
    except sa.exc.IntegrityError as e:
        assert e.orig.sqlstate == "23503", e.orig.sqlstate
        session.rollback()
    # Deleting an author deletes their books first (cascade), then the author.
    session.delete(ann)
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(Book)) == 0
    assert [a.name for a in session.scalars(sa.select(Author).order_by(Author.id))] == ["Bob"]

# uuid keys round-trip as uuid.UUID, through the unit of work and lookups by key.
with Session(engine) as session:
    phone = Device(label="phone")
    session.add_all([phone, Device(label="laptop")])
    session.commit()
    assert isinstance(phone.id, uuid.UUID) and isinstance(phone.token, uuid.UUID), (phone.id, phone.token)
    key = phone.id
with Session(engine) as session:
    found = session.get(Device, key)
    assert found is not None and found.label == "phone" and found.id == key, found
    found.label = "old phone"
    session.commit()
    assert session.scalars(sa.select(Device.label).where(Device.id == key)).one() == "old phone"
    session.delete(found)
    session.commit()
    assert [d.label for d in session.scalars(sa.select(Device))] == ["laptop"]

# A delete that would leave a book without its author is refused.
with engine.connect() as conn:
    conn.execute(sa.text("INSERT INTO book (title, author_id) VALUES ('Kept', 2)"))
    conn.commit()
    try:
        conn.execute(sa.text("DELETE FROM author WHERE id = 2"))
        raise AssertionError("a referenced author was deleted")
    except sa.exc.IntegrityError as e:
        assert e.orig.sqlstate == "23503", e.orig.sqlstate
        conn.rollback()
    assert conn.execute(sa.text("SELECT count(*) FROM author")).scalar() == 1

# A Session's transaction is the server's: flushed rows are seen inside it and
# by nobody else, rollback discards them, and begin_nested() is a savepoint.
def authors(on):
    return sorted(on.execute(sa.text("SELECT name FROM author")).scalars())

with Session(engine) as session, engine.connect() as other:
    session.add(Author(name="Temp"))
    session.flush()
    assert authors(session) == ["Bob", "Temp"], authors(session)
    assert authors(other) == ["Bob"], "another connection sees the uncommitted row"
    other.rollback()
    session.rollback()
    assert authors(session) == ["Bob"], "rollback discarded the flushed row"
    session.add(Author(name="Kept"))
    nested = session.begin_nested()
    session.add(Author(name="Dropped"))
    session.flush()
    assert authors(session) == ["Bob", "Dropped", "Kept"], authors(session)
    nested.rollback()
    session.commit()
    assert authors(other) == ["Bob", "Kept"], authors(other)

print("ok")
