"""The fake providers and a reference image, shared by this folder's test modules."""

from tests.providers.test_providers import fakes, ref

__all__ = ["fakes", "ref"]
