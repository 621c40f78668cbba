pytest_plugins = ["tests._database", "tests._redis", "tests._services", "tests._stack", "tests._providers", "tests.api._world"]
