"""The zoo's shared sampler suite on this plugin's sampler: what a plugin author writes to get it."""

import pytest

from zoo_core.testing import SAMPLER_CHECKS, run_check


@pytest.mark.parametrize("check", SAMPLER_CHECKS, ids=lambda c: c.__name__)
def test_pc_meets_the_sampler_contract(check):
    run_check("pc", check)
