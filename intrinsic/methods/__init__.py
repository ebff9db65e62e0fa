"""Fine-tuning methods measured beside d90, one module per family, one interface (:class:`Method`).

``get_method("lora")`` returns the method; its module is imported only then, so that methods built
on optional packages (``peft``) cost nothing until they are used.

==================  ==========================  =================================================
family              module                      methods
==================  ==========================  =================================================
random subspaces    ``subspace.py``             ``did``, ``said``
``peft`` tuners     ``peft_tuners.py``          ``lora``, ``prompt-tuning``, ``p-tuning``, ``ia3``,
                                                ``vera``, ``fourierft``, ``unilora``
prefix tuning       ``prefix.py``               ``prefix-tuning``
bottleneck adapters ``adapters.py``             ``houlsby``, ``pfeiffer``
bias terms          ``bitfit.py``               ``bitfit``, ``bitfit-subset``
sparse differences  ``diff_pruning.py``         ``diff-pruning``
binary masks        ``masking.py``              ``masking``
PaFi and HiWi       ``pafi.py``                 ``pafi``, ``hiwi``
the baseline        ``head_only.py``            ``head-only`` (a linear probe: the head alone)
==================  ==========================  =================================================
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import (
    HEAD_POLICIES,
    SEARCH_CAP,
    Counts,
    Knob,
    Method,
    apply_head_policy,
    head_parameter_names,
    trainable_count,
)

_REGISTRY = {
    "did": "subspace:DID", "said": "subspace:SAID",
    "lora": "peft_tuners:LoRA", "prompt-tuning": "peft_tuners:PromptTuning", "p-tuning": "peft_tuners:PTuning",
    "ia3": "peft_tuners:IA3", "vera": "peft_tuners:VeRA", "fourierft": "peft_tuners:FourierFT",
    "unilora": "peft_tuners:UniLoRA",
    "prefix-tuning": "prefix:PrefixTuning",
    "houlsby": "adapters:Houlsby", "pfeiffer": "adapters:Pfeiffer",
    "bitfit": "bitfit:BitFit", "bitfit-subset": "bitfit:BitFitSubset",
    "diff-pruning": "diff_pruning:DiffPruning",
    "masking": "masking:Masking",
    "pafi": "pafi:PaFi", "hiwi": "pafi:HiWi",
    "head-only": "head_only:HeadOnly",
}
METHOD_NAMES = tuple(_REGISTRY)


def get_method(name: str) -> Method:
    """The method called ``name`` (one of :data:`METHOD_NAMES`)."""
    if name not in _REGISTRY:
        raise ConfigError("method", f"{name!r} is unknown; choose one of {', '.join(METHOD_NAMES)}")
    module_name, class_name = _REGISTRY[name].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)()


__all__ = ["HEAD_POLICIES", "METHOD_NAMES", "SEARCH_CAP", "Counts", "Knob", "Method", "apply_head_policy", "get_method",
           "head_parameter_names", "trainable_count"]
