pytest_plugins = ["tests._database"]
