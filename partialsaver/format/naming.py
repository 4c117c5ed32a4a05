"""File names of a V2 checkpoint ("tensor bundle") with prefix ``PREFIX``.

``PREFIX.index`` holds the table of entries; ``PREFIX.data-00000-of-00002`` and
``PREFIX.data-00001-of-00002`` hold the tensor bytes of a 2-shard bundle.
"""

from __future__ import annotations

from typing import List

__all__ = ["data_path", "data_paths", "index_path"]


def index_path(prefix: str) -> str:
    """Return the index file of the bundle ``prefix``."""
    return f"{prefix}.index"


def data_path(prefix: str, shard_id: int, num_shards: int) -> str:
    """Return data file ``shard_id`` (from 0) of a bundle with ``num_shards`` data files."""
    return f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"


def data_paths(prefix: str, num_shards: int) -> List[str]:
    """Return all data files of a bundle with ``num_shards`` data files."""
    return [data_path(prefix, shard_id, num_shards) for shard_id in range(num_shards)]
