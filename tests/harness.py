"""The names `bench/` imports from the tests: the platform's processes and the test image. The
tests themselves use `tests.support`, where these live."""

from tests.support.api import User, signup
from tests.support.docker import TEST_IMAGE, build_test_image, docker_available
from tests.support.platform import TEST_INSTANCE, Platform, platform_env
from tests.support.waiting import wait_for

__all__ = [
    "TEST_IMAGE",
    "TEST_INSTANCE",
    "Platform",
    "User",
    "build_test_image",
    "docker_available",
    "platform_env",
    "signup",
    "wait_for",
]
