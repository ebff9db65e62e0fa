"""The executors a measurement can run its runs on (no imports: the configuration reads it)."""

EXECUTORS = ("serial", "ray")
