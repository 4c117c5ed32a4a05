"""The ``.index`` file as a whole: read it, write it, rename the keys in it.

An index-only rewrite (renaming variables without touching tensor bytes) is
:func:`rename_entries` then :func:`write_index`: entries are copied byte for byte,
and only the keys change, slice keys of partitioned variables included.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Tuple, Union

from partialsaver.errors import CorruptCheckpointError, NameMapError, UsageError, VariableNotFoundError
from partialsaver.format.errors import corrupt, not_found, unsupported
from partialsaver.format.fs import LOCAL, FileSystem
from partialsaver.format.naming import index_path
from partialsaver.format.ordered_code import SliceKeyError, encode_slice_key
from partialsaver.format.proto import Entry, Header, decode_entry, decode_header
from partialsaver.format.table import build_table, read_table

__all__ = ["Key", "encode_index", "key_bytes", "key_text", "read_index", "rename_entries", "write_index"]

Key = Union[str, bytes]
_FORMAT_CONSUMER = 1  # The bundle format version read here (TensorFlow's too).


def key_bytes(key: Key) -> bytes:
    """Return the table key of a checkpoint key (``str`` keys are UTF-8).

    Raises:
        UsageError: A ``str`` that is not encodable (a lone surrogate).
    """
    if isinstance(key, bytes):
        return key
    try:
        return key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise UsageError(f"Checkpoint key {key!r} is not valid text.") from None


def key_text(key: bytes) -> str:
    """Return a table key as ``str`` (bytes that are not UTF-8 survive as surrogates)."""
    return key.decode("utf-8", "surrogateescape")


def read_index(prefix: str, fs: FileSystem = LOCAL) -> Tuple[Header, Dict[bytes, Entry]]:
    """Read and check the index of the bundle ``prefix``.

    Returns:
        The header and every entry by table key (slice keys included), in key order.

    Raises:
        CheckpointNotFoundError: No ``prefix.index``.
        CorruptCheckpointError: A damaged index, or a header TensorFlow would refuse.
    """
    path = index_path(prefix)
    try:
        with fs.open(path, "rb") as file:
            data = file.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise not_found(path, "no index file") from None
    items = read_table(data, path)
    if not items or items[0][0] != b"":
        raise corrupt(path, "the index has no header entry")
    header = decode_header(items[0][1], path)
    if header.num_shards < 1:
        raise corrupt(path, f"the header says {header.num_shards} data files")
    if header.producer < 0 or header.min_consumer > _FORMAT_CONSUMER or _FORMAT_CONSUMER in header.bad_consumers:
        detail = f"bundle format version {header.producer} (min consumer {header.min_consumer})"
        raise unsupported(path, detail, "It was written by a newer TensorFlow; read it with that version.")
    entries = {key: decode_entry(value, path, key_text(key)) for key, value in items[1:]}
    return header, entries


def encode_index(header: Header, entries: Union[Mapping[Any, Entry], Iterable[Tuple[Key, Entry]]]) -> bytes:
    """Return the bytes of an index holding ``header`` and ``entries`` (any order; sorted here).

    Raises:
        UsageError: The empty key (reserved for the header) or a duplicate key.
    """
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    table: Dict[bytes, bytes] = {}
    for key, entry in pairs:
        table_key = key_bytes(key)
        if not table_key:
            raise UsageError("The empty key is the header's; give every entry a name.")
        if table_key in table:
            raise UsageError(f"Duplicate checkpoint key {key!r}.")
        table[table_key] = entry.raw
    return build_table([(b"", header.raw), *sorted(table.items())])


def write_index(
    path: str,
    header: Header,
    entries: Union[Mapping[Key, Entry], Iterable[Tuple[Key, Entry]]],
    fs: FileSystem = LOCAL,
) -> None:
    """Write an index file referencing existing data files (no tensor bytes are written).

    ``header.num_shards`` and each entry's ``shard_id`` / ``offset`` must describe the
    data files that will sit next to ``path`` under the same prefix. Write to a
    temporary name and ``fs.replace`` it over the old index to swap atomically.
    """
    data = encode_index(header, entries)
    with fs.open(path, "wb") as file:
        file.write(data)


def rename_entries(entries: Mapping[bytes, Entry], renames: Mapping[str, str]) -> Dict[bytes, Entry]:
    """Return ``entries`` with variables renamed, entry bytes unchanged.

    A partitioned variable's slice keys embed its name, so they are rebuilt from the
    stored slices (keeping each extent's explicit or whole-dimension form, which the
    key encodes). ``_CHECKPOINTABLE_OBJECT_GRAPH`` is not rewritten: an object-based
    checkpoint whose variables are renamed restores by name, not through its graph.

    Args:
        entries: Table key -> entry, slice keys included (``BundleReader.raw_items()``).
        renames: Old checkpoint key -> new checkpoint key.

    Raises:
        VariableNotFoundError: A name to rename that is not in ``entries``.
        NameMapError: Two variables renamed to the same key.
    """
    new_keys: Dict[bytes, bytes] = {}
    for old_name, new_name in renames.items():
        old_key = key_bytes(old_name)
        entry = entries.get(old_key)
        if entry is None:
            raise VariableNotFoundError(f"Cannot rename {old_name!r}: the checkpoint has no such variable.")
        new_keys[old_key] = key_bytes(new_name)
        for spec in entry.slices:
            try:
                new_keys[encode_slice_key(old_name, spec)] = encode_slice_key(new_name, spec)
            except SliceKeyError as error:
                raise CorruptCheckpointError(f"Variable {old_name!r} has a malformed slice {spec}: {error}.") from None
    out: Dict[bytes, Entry] = {}
    for table_key, entry in entries.items():
        new_key = new_keys.get(table_key, table_key)
        if new_key in out:
            raise NameMapError(f"Renaming gives two variables the key {key_text(new_key)!r}.")
        out[new_key] = entry
    return dict(sorted(out.items()))
