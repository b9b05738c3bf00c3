"""The bundled default model: present in the installed package, and it knows its corpus."""

import tokenscope
from tokenscope.lm.loading import builtin_model_path

FEW_SHOT = (
    "Translate English to Indonesian:\n"
    "sea otter => berang-berang laut\n"
    "cheese => keju\n"
    "plush toy => boneka\n"
    "Translate English to Indonesian:\n"
    "cloud =>"
)


def test_it_ships_inside_the_package_and_is_small():
    folder = builtin_model_path()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (folder / "model.safetensors").stat().st_size < 10_000_000  # a few MB


def test_the_seeds_capital_example_comes_out_on_top():
    model = tokenscope.load_model("builtin")
    dist = model.predict_next_token_probabilities("The capital of Indonesia is")
    assert model.get_most_likely_token(dist) == " Jakarta"
    assert dist.probability_of(" Jakarta") > 0.5


def test_the_seeds_few_shot_example_comes_out_on_top():
    model = tokenscope.load_model("builtin")
    dist = model.predict_next_token_probabilities(FEW_SHOT)
    assert model.get_most_likely_token(dist) == " awan"


def test_it_learned_more_than_the_two_examples():
    model = tokenscope.load_model("builtin")
    facts = {"France": " Paris", "Japan": " Tokyo", "Kenya": " Nairobi", "Peru": " Lima"}
    right = sum(
        model.get_most_likely_token(
            model.predict_next_token_probabilities(f"The capital of {country} is")
        )
        == city
        for country, city in facts.items()
    )
    assert right >= 3


def test_it_learns_an_invented_language_from_the_examples():
    """The in-context preset: with no example the made-up ending is a guess; by four examples
    the model reads it off the prompt. The memorised table, by contrast, is flat."""
    from tokenscope.lm.fewshot import load_prompt, sweep
    from tokenscope.lm.fewshot.scoring import read_sweep

    model = tokenscope.load_model("builtin")
    points = sweep(model, load_prompt("invented-language"), max_shots=4)
    p = [pt.probability for pt in points]
    assert p[0] < 0.05  # near chance: nothing says the ending is "vek"
    assert p[4] - p[0] > 0.5  # the threshold the issue asks to state
    assert min(p[1:]) > 0.5  # (one example shows this simple rule; measured 0.99 from 1 shot)
    assert read_sweep(points).startswith("Rising")
    flat = sweep(model, load_prompt("english-indonesian"), max_shots=4)
    assert min(pt.probability for pt in flat) > 0.8  # remembered, with or without examples
    assert read_sweep(flat).startswith("Flat and high")
