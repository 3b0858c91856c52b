"""The names `bench/` imports from the tests: the platform's processes and the test image. The
tests themselves use `tests.support`, where these live."""

from tests.support.docker import TEST_IMAGE, build_test_image
from tests.support.platform import Platform, platform_env

__all__ = ["TEST_IMAGE", "Platform", "build_test_image", "platform_env"]
