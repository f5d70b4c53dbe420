pytest_plugins = ["llmops_kit.testing"]
