"""The errors ``intrinsic`` raises for bad input, each with fields a caller (the CLI) can read.

A module with no dependencies, so that any module can raise them without import cycles.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad value of one setting: ``argument`` names it as Python does (``lrs``), ``problem`` says what is wrong.

    ``str(error)`` is ``f"{argument} {problem}"``; ``measure-did`` prints its own flag (``--lr``) instead.
    """

    def __init__(self, argument: str, problem: str):
        super().__init__(f"{argument} {problem}")
        self.argument, self.problem = argument, problem


class ModelLoadError(OSError):
    """A model spec that is neither a local model folder nor loadable from the Hugging Face hub.

    ``model`` is the spec as given, ``reason`` the loader's own message.
    """

    def __init__(self, model: str, reason: str):
        super().__init__(f"cannot load model {model!r}: it is not a local model folder and could not be fetched "
                         "from the Hugging Face hub; check the name (and @revision), or pass a folder with config.json")
        self.model, self.reason = model, reason
