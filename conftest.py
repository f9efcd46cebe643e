pytest_plugins = ["eventkit.testing"]
