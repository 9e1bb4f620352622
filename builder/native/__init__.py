"""Native code shipped with pmem-image: the flush test and the PMDK check (C sources) and their build flags."""

from importlib import resources

FLUSH_TEST_SOURCE = "pmem-flush-test.c"
PMDK_CHECK_SOURCE = "pmem-pmdk-check.c"
PMDK_CHECK_LIBS = ["-lpmemobj", "-lpmem2", "-lpmem"]
# The image's build: no -Werror, so a newer distribution compiler's new warning cannot break an image.
FLUSH_TEST_CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra"]
# Host builds (tests, `pmem-image flush-test`): warnings are errors, so new ones are seen here first.
HOST_CFLAGS = [*FLUSH_TEST_CFLAGS, "-Werror"]


def flush_test_source() -> str:
    return (resources.files(__name__) / FLUSH_TEST_SOURCE).read_text(encoding="utf-8")


def pmdk_check_source() -> str:
    return (resources.files(__name__) / PMDK_CHECK_SOURCE).read_text(encoding="utf-8")
