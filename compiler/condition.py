"""Class-conditional generators: the model metadata that says the input ends with a one-hot class.

Apart from the frontend, so that the commands that read a build dir (rtl, sim, ...) need not import onnx.
"""
from undense.errors import UndenseError

CONDITION_KEY = "undense.condition"  # model metadata of a class-conditional generator: one_hot:N


def condition_classes(metadata: dict[str, str], features: int) -> int:
    """The one-hot classes a class-conditional generator's input (of `features`) ends with: its model metadata
    `undense.condition` = `one_hot:N`; 0 for a model without it."""
    value = metadata.get(CONDITION_KEY)
    if value is None:
        return 0
    kind, _, count = value.partition(":")
    if kind != "one_hot" or not count.isdigit() or not 0 < int(count) < features:
        raise UndenseError(f"the model's metadata {CONDITION_KEY} is '{value}'; it must be one_hot:N, N being "
                           f"how many of the input's last features are a one-hot class (fewer than {features})")
    return int(count)
