"""Demo (placeholder until the sample data lands)."""


def register(sub) -> None:
    pass
