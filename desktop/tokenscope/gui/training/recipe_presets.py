"""Ready-made runs for the Training tab: a choice that fills the settings from a recipe shipped
in resources/recipes (the same file `tokenscope train --recipe NAME` reads).

    recipes = RecipeChoice(plan, data, options)
    fields = recipes.merged(fields)   # the recipe's other settings, under the ones shown

Choosing a recipe fills what the panel shows (shape, steps, batch, learning rate, evaluation,
tokenizer, name, sample prompt, a probe); the recipe's other settings (its own text, weight
decay, evaluation batches, ...) go into the run as the recipe has them. Settings changed by
hand afterwards win.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QVBoxLayout, QWidget

from tokenscope.gui.background import run_in_background

if TYPE_CHECKING:
    from tokenscope.gui.training.run_options import RunOptions
    from tokenscope.gui.training.training_data import TrainingData
    from tokenscope.gui.training.training_plan import TrainingPlan

#: (label, recipe name or None, what it is in words)
RECIPES = (
    ("Your own text and settings", None, ""),
    (
        "Induction heads (about 10 min)",
        "induction",
        "A 2-layer model on made-up text (random strings, each said twice), no files needed. "
        "Within a few thousand steps it forms induction heads: watch the In-context learning "
        "pane below the charts (the ICL score drops, a head lights up in the heat strip, and "
        "the loss curve gets a marker). Then test the head there in one click.",
    ),
)
#: model fields the panel shows (the recipe's others are kept as they are)
SHOWN_MODEL = ("n_layer", "n_head", "d_model", "context_length")
SAMPLE_CHARACTERS = 64_000  # of a recipe's made-up text: enough to hold every character


def load_recipe(name: str) -> dict[str, Any]:
    """The recipe's settings, as its JSON file has them."""
    from tokenscope.train.config import recipe_path

    settings = json.loads(recipe_path(name).read_text(encoding="utf-8"))
    if not isinstance(settings, dict):
        raise ValueError(f"the recipe {name!r} is not a JSON object")
    return settings


def recipe_vocabulary(recipe: dict[str, Any]) -> int | None:
    """The vocabulary a recipe's character tokenizer will have on the recipe's own text (the
    panel cannot preview text it has no files for); None when not known here."""
    if recipe.get("tokenizer") != "char" or recipe.get("corpus_recipe") != "induction":
        return None
    from tokenscope.lm.tokenizer import Tokenizer
    from tokenscope.train import induction_corpus

    return Tokenizer.train_chars(induction_corpus.build(characters=SAMPLE_CHARACTERS)).vocab_size


class RecipeChoice(QGroupBox):
    """Start from a shipped recipe, or from the settings below."""

    def __init__(self, plan: TrainingPlan, data: TrainingData, options: RunOptions,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__("Start from", parent)
        self.setObjectName("recipeChoice")
        self.plan, self.data, self.options = plan, data, options
        self.recipe: dict[str, Any] | None = None  # the chosen recipe's settings
        self.choice = QComboBox(objectName="recipePreset")
        self.choice.setAccessibleName("Ready-made run")
        for label, name, _about in RECIPES:
            self.choice.addItem(label, name)
        self.about = QLabel(objectName="recipeAbout", wordWrap=True, visible=False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.choice)
        layout.addWidget(self.about)
        self.choice.currentIndexChanged.connect(self._on_choice_changed)

    def choose(self, name: str | None) -> None:
        """Choose the recipe called `name` (None: the panel's own settings)."""
        self.choice.setCurrentIndex(max(0, self.choice.findData(name)))

    def provides_text(self) -> bool:
        """Whether the chosen recipe brings its own text (no files needed)."""
        return bool(self.recipe and self.recipe.get("corpus_recipe"))

    def merged(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The run's fields: the panel's `fields` over the chosen recipe's other settings."""
        if self.recipe is None:
            return fields
        extra = {k: v for k, v in self.recipe.items() if k not in ("out_dir", "name", "data")}
        model = {k: v for k, v in (extra.get("model") or {}).items() if k not in SHOWN_MODEL}
        out = {**extra, **fields}
        out["model"] = {**fields.get("model", {}), **model}
        out["data"] = list(fields.get("data") or []) + list(self.recipe.get("data") or [])
        return out

    def _on_choice_changed(self, index: int) -> None:
        name = self.choice.itemData(index)
        about = RECIPES[index][2] if 0 <= index < len(RECIPES) else ""
        self.about.setText(about)
        self.about.setVisible(bool(about))
        if name is None:
            self.recipe = None
            return
        try:
            recipe = load_recipe(name)
        except (OSError, ValueError) as e:
            self.recipe = None
            self.about.setText(f"Cannot read the recipe {name!r}: {e}")
            self.about.setVisible(True)
            return
        self.recipe = recipe
        self._fill(recipe)
        # The model's size, and so the time estimate, depend on the vocabulary.
        run_in_background(lambda: recipe_vocabulary(recipe), self._on_vocabulary_counted, self)

    def _on_vocabulary_counted(self, vocab: int | None, error: str | None) -> None:
        if vocab is not None and not error and self.recipe is not None:
            self.plan.set_vocabulary(vocab)

    def _fill(self, r: dict[str, Any]) -> None:
        plan, data, options = self.plan, self.data, self.options
        if r.get("preset"):
            plan.preset.setCurrentIndex(max(0, plan.preset.findData(r["preset"])))
        model = r.get("model") or {}
        for box, value in ((plan.layers, model.get("n_layer")), (plan.heads, model.get("n_head")),
                           (plan.width, model.get("d_model")),
                           (plan.context, r.get("context") or model.get("context_length")),
                           (plan.steps, r.get("steps")), (plan.batch, r.get("batch_size")),
                           (plan.eval_every, r.get("eval_every"))):  # fmt: skip
            if isinstance(value, int):
                box.setValue(value)
        if isinstance(r.get("learning_rate"), int | float):
            plan.lr.setValue(float(r["learning_rate"]))
        if r.get("tokenizer"):
            data.kind.setCurrentIndex(max(0, data.kind.findData(r["tokenizer"])))
        options.name.setText(str(r.get("name") or ""))
        prompts = r.get("sample_prompts") or []
        options.sample_prompt.setText(str(prompts[0]) if prompts else "")
        probes = [f"{p['prompt']}|{p['continuation']}" for p in r.get("probes") or []
                  if isinstance(p, dict) and isinstance(p.get("prompt"), str)
                  and isinstance(p.get("continuation"), str)]  # fmt: skip
        options.probes.setPlainText("\n".join(probes))
