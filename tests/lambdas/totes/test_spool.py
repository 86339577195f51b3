"""A full local disk becomes an error that names the stage, the table and the fix."""

from __future__ import annotations

import errno

import pytest

from totes.errors import DiskFullError
from totes.spool import on_local_disk


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_a_full_disk_names_the_step_table_key_and_the_setting_that_sizes_it(code: int) -> None:
    with (
        pytest.raises(DiskFullError) as raised,
        on_local_disk("load", table="fact_payment", key="k"),
    ):
        raise OSError(code, "No space left on device")
    message = str(raised.value)
    assert message.startswith("[load table=fact_payment key=k] the local disk is too small")
    assert "No space left on device" in message  # the underlying cause is kept
    assert "lambda_ephemeral_storage_mb" in message
    assert raised.value.step == "load"


def test_other_operating_system_errors_pass_through_unchanged() -> None:
    with pytest.raises(PermissionError), on_local_disk("extract", table="payment"):
        raise PermissionError(errno.EACCES, "Permission denied")
