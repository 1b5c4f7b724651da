"""LaVin's built-in plugin: tasks and prompt samplers, registered through the ``lavin`` entry
point exactly as a third-party plugin is (see ``pyproject.toml``)."""
