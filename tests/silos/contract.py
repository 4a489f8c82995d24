"""The data every silo kind is loaded with for the shared contract suite, and the case interface.

Each silo kind provides a pytest fixture ``<kind>_case`` (in ``tests/silos/cases/<kind>.py``)
returning a ``SiloCase``: a silo holding ``PEOPLE`` as table ``people`` and an empty table
``nobody`` with the same columns, plus a function that appends one row to ``people`` the way a
writer to that silo would (not through the silo, which is read-only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from fed_assets.silo import SiloResource

PEOPLE = pa.table(
    {
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "name": pa.array(["Ada", "Bülent", "Chloé", None, "Émile"], pa.string()),
        "amount": pa.array([10.5, 20.0, None, 40.25, 50.0], pa.float64()),
        "active": pa.array([True, False, True, True, None], pa.bool_()),
        "joined": pa.array(
            [
                dt.datetime(2024, 1, 1, 9, 30),
                dt.datetime(2024, 2, 15, 12, 0),
                dt.datetime(2024, 3, 31, 23, 59),
                dt.datetime(2024, 4, 1, 0, 0),
                None,
            ],
            pa.timestamp("us"),
        ),
    }
)

# The row ``SiloCase.append_row`` adds.
NEW_ROW = {
    "id": 6,
    "name": "Zoë",
    "amount": 60.0,
    "active": False,
    "joined": dt.datetime(2024, 6, 1),
}


@dataclass
class SiloCase:
    """A silo loaded with the contract data, and a writer that changes ``people``."""

    silo: SiloResource
    append_row: Callable[[], None]
    # Kinds whose metadata cannot fingerprint a change say so: version().method == "content".
    expected_version_method: str = "metadata"
