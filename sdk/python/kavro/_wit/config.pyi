"""The plugin's own settings from the host config (wit: kavro:plugin/config).
Always granted for the plugin's own values; never raises."""

def get(key: str) -> str | None:
    """The value of setting `key`, or None if it is not set."""

def entries() -> list[tuple[str, str]]:
    """Every setting as (key, value)."""
