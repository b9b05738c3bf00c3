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
