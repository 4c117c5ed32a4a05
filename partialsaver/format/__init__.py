"""TensorFlow's V2 checkpoint format ("tensor bundle"), read and written without TensorFlow.

Pure Python over numpy and ``google-crc32c`` (``ml_dtypes``, when installed, gives
bfloat16 / float8 / int4 tensors a numpy dtype). Never imports TensorFlow or the
``protobuf`` package: the few protos involved are encoded by hand.

A checkpoint ``PREFIX`` is ``PREFIX.index`` (an SSTable: key -> BundleEntryProto,
plus a BundleHeaderProto under the empty key) and ``PREFIX.data-0000i-of-0000n``
(the tensor bytes, each tensor checked by a crc32c stored in its entry).

Reading::

    from partialsaver.format import BundleReader
    with BundleReader("train/model.ckpt-1000") as reader:
        for key in reader.keys():                       # sorted, slice keys hidden
            print(key, reader.dtype_name(key), reader.shape(key), reader.nbytes(key))
        kernel = reader.read("dense/kernel")            # np.ndarray, crc checked first
        reader.verify("dense/bias")                     # crc only, bounded memory

Writing::

    from partialsaver.format import BundleWriter
    with BundleWriter("out/model.ckpt") as writer:      # finish() on a clean exit
        writer.add("dense/kernel", kernel)
        writer.add("names", np.array([b"a", b"bc"], dtype=object))
        writer.add_slice("emb", (10, 4), [(0, 5), (0, None)], emb[:5])
        writer.copy_from(reader, "dense/bias", "head/bias")   # bytes copied, crc checked

Public API:

* ``BundleReader(prefix, fs=LOCAL)``: ``.header``, ``.num_shards``, ``.keys()``,
  ``.raw_items()``, ``.entry(key)``, ``.shape(key)``, ``.dtype_name(key)``,
  ``.nbytes(key)``, ``.read(key)``, ``.read_raw(key)``, ``.iter_raw(key, chunk_size)``,
  ``.verify(key)``, ``.slice_entries(key)``, ``.data_path(shard_id)``, ``.close()``.
* ``BundleWriter(prefix, fs=LOCAL, *, num_shards=1, index_path=None, data_paths=None,
  header=None)``: ``.add(key, array, dtype=None, shard_id=0)``, ``.add_slice(key,
  full_shape, extents, array, ...)``, ``.add_raw(key, entry, data, shard_id=0,
  check=False)``, ``.add_entry(key, entry)``, ``.copy_from(reader, key, new_key)``,
  ``.finish()``, ``.abort()``.
* Index only: ``read_index(prefix, fs)``, ``write_index(path, header, entries, fs)``,
  ``encode_index(header, entries)``, ``rename_entries(entries, renames)``.
* Records: ``Header``, ``Entry`` (immutable; ``.raw`` keeps the stored bytes),
  ``Extent(start, length)`` (``length=None``: a whole dimension).
* Names and slices: ``index_path``, ``data_path``, ``data_paths``,
  ``encode_slice_key``, ``decode_slice_key``.
* Dtypes: ``dtype_name(enum)``, ``dtype_enum(name_or_numpy)``, ``numpy_dtype(enum)``,
  ``itemsize(enum)``.
* Tables: ``read_table(data, path)``, ``build_table(items, block_size=...,
  restart_interval=..., shorten_index_keys=True)``.
* File systems: ``FileSystem`` (protocol), ``LOCAL``, ``LocalFileSystem``.
* Errors: damage is ``CorruptCheckpointError`` (its subclass
  ``UnsupportedCheckpointError`` for valid files not decodable here), a missing file
  ``CheckpointNotFoundError``, a missing key ``VariableNotFoundError``, misuse
  ``UsageError`` (all from :mod:`partialsaver.errors`).

Keys are ``str`` (UTF-8; undecodable bytes survive as surrogates); table keys,
including the slice keys of partitioned variables, are ``bytes``.
"""

from __future__ import annotations

from partialsaver.format.bundle import BundleReader
from partialsaver.format.dtypes import dtype_enum, dtype_name, itemsize, numpy_dtype
from partialsaver.format.errors import UnsupportedCheckpointError
from partialsaver.format.fs import LOCAL, FileSystem, LocalFileSystem
from partialsaver.format.index import encode_index, read_index, rename_entries, write_index
from partialsaver.format.naming import data_path, data_paths, index_path
from partialsaver.format.ordered_code import decode_slice_key, encode_slice_key
from partialsaver.format.proto import Entry, Extent, Header
from partialsaver.format.table import build_table, read_table
from partialsaver.format.writer import BundleWriter

__all__ = [
    "LOCAL",
    "BundleReader",
    "BundleWriter",
    "Entry",
    "Extent",
    "FileSystem",
    "Header",
    "LocalFileSystem",
    "UnsupportedCheckpointError",
    "build_table",
    "data_path",
    "data_paths",
    "decode_slice_key",
    "dtype_enum",
    "dtype_name",
    "encode_index",
    "encode_slice_key",
    "index_path",
    "itemsize",
    "numpy_dtype",
    "read_index",
    "read_table",
    "rename_entries",
    "write_index",
]
