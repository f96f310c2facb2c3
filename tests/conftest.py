"""Test layers: the default ``pytest -q`` is the fast layer a developer runs after every change;
tests marked ``slow`` (end-to-end runs over real architectures, multi-process runs) join it with
``--run-slow``, which the README's full test command and CI use."""
import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (the full suite CI runs)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end test that takes seconds or more; runs with --run-slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
