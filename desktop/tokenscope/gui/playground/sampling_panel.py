"""The sampling knobs: temperature, top-k, top-p, min-p, repetition penalty and seed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox, QWidget

if TYPE_CHECKING:
    from tokenscope.lm.sampling import SamplingSettings

DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "seed": 0,
    # Off: Generate draws anew each time, as sampling does; each branch shows its seed.
    "use_seed": False,
}


#: what each knob may hold (the controls' own ranges)
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 5.0),
    "top_k": (0, 100_000),
    "top_p": (0.01, 1.0),
    "min_p": (0.0, 1.0),
    "repetition_penalty": (0.1, 5.0),
    "seed": (0, 2**31 - 1),
}


def check_values(values: Any) -> dict[str, Any]:
    """Knob values from a file (settings, a session), checked: ValueError names the bad one.

    Missing knobs take their defaults; unknown keys are ignored (a newer version's knobs)."""
    if not isinstance(values, dict):
        raise ValueError(f"the sampling knobs should be an object, not {type(values).__name__}")
    out = dict(DEFAULTS)
    for name, (low, high) in RANGES.items():
        if name not in values:
            continue
        value = values[name]
        whole = isinstance(DEFAULTS[name], int)
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"the knob {name} should be {kind} from {low:g} to {high:g}")
        out[name] = value
    if "use_seed" in values:
        if not isinstance(values["use_seed"], bool):
            raise ValueError("the knob use_seed should be true or false")
        out["use_seed"] = values["use_seed"]
    return out


class SamplingPanel(QGroupBox):
    """Emits `settings_changed` whenever a knob moves (GUI thread)."""

    #: () — a knob changed; read `values()` or `settings()`
    settings_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Sampling", parent)
        form = QFormLayout(self)
        self.temperature = self._double(
            "temperatureControl", *RANGES["temperature"], 0.05, 2, "Temperature"
        )
        self.temperature.setToolTip("0 is greedy: always the most likely token")
        self.top_k = QSpinBox(objectName="topKControl", minimum=0, maximum=100000)
        self.top_k.setSpecialValueText("off")
        self.top_k.setAccessibleName("Top-k")
        self.top_k.setToolTip("keep only the k most likely tokens (0: off)")
        self.top_p = self._double("topPControl", *RANGES["top_p"], 0.05, 2, "Top-p")
        self.top_p.setToolTip("keep the most likely tokens until their mass reaches p")
        self.min_p = self._double("minPControl", *RANGES["min_p"], 0.01, 2, "Min-p")
        self.min_p.setToolTip("drop tokens less likely than min-p times the best one")
        self.penalty = self._double(
            "repetitionPenaltyControl", *RANGES["repetition_penalty"], 0.05, 2, "Repetition penalty"
        )
        self.penalty.setToolTip("above 1 makes tokens already in the text less likely")
        self.seed = QSpinBox(objectName="seedControl", minimum=0, maximum=2**31 - 1)
        self.seed.setAccessibleName("Seed")
        self.use_seed = QCheckBox("fixed seed", objectName="useSeedControl")
        self.use_seed.setToolTip(
            "the same seed draws the same tokens again; off, each branch gets a new seed, shown "
            "beside it in the branch list"
        )
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-k", self.top_k)
        form.addRow("Top-p", self.top_p)
        form.addRow("Min-p", self.min_p)
        form.addRow("Repetition penalty", self.penalty)
        form.addRow(self.use_seed, self.seed)
        self.set_values(DEFAULTS)
        for w in (self.temperature, self.top_p, self.min_p, self.penalty):
            w.valueChanged.connect(self.settings_changed)
        self.top_k.valueChanged.connect(self.settings_changed)
        self.seed.valueChanged.connect(self.settings_changed)
        self.use_seed.toggled.connect(self.settings_changed)

    def _double(
        self, name: str, lo: float, hi: float, step: float, decimals: int, label: str
    ) -> QDoubleSpinBox:
        box = QDoubleSpinBox(objectName=name, minimum=lo, maximum=hi, singleStep=step)
        box.setDecimals(decimals)
        box.setAccessibleName(label)
        return box

    def values(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature.value(),
            "top_k": self.top_k.value(),
            "top_p": self.top_p.value(),
            "min_p": self.min_p.value(),
            "repetition_penalty": self.penalty.value(),
            "seed": self.seed.value(),
            "use_seed": self.use_seed.isChecked(),
        }

    def set_values(self, values: dict[str, Any]) -> None:
        """Show these knob values (checked first: ValueError if one is wrong, nothing set)."""
        v = check_values(values)
        self.temperature.setValue(float(v["temperature"]))
        self.top_k.setValue(int(v["top_k"]))
        self.top_p.setValue(float(v["top_p"]))
        self.min_p.setValue(float(v["min_p"]))
        self.penalty.setValue(float(v["repetition_penalty"]))
        self.seed.setValue(int(v["seed"]))
        self.use_seed.setChecked(bool(v["use_seed"]))

    def settings(self, seed_offset: int = 0) -> SamplingSettings:
        """The knobs as tokenscope.lm.SamplingSettings (imports the engine: call after loading)."""
        from tokenscope.lm.sampling import SamplingSettings

        v = self.values()
        return SamplingSettings(
            temperature=v["temperature"],
            top_k=v["top_k"],
            top_p=v["top_p"],
            min_p=v["min_p"],
            repetition_penalty=v["repetition_penalty"],
            seed=(v["seed"] + seed_offset) if v["use_seed"] else None,
        )
