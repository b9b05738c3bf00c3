"""Few-shot prompts: build a prompt from parts and measure how examples change the answer.

    prompt = FewShotPrompt.load(preset_path("english-indonesian"))
    prompt.with_shots(3).assemble().text     # "Translate English to Indonesian:\\n...cloud =>"
    score_answer(model, prompt, "awan")      # P(" awan" | prompt), all of its tokens
    sweep(model, prompt)                     # the same for 0, 1, ..., k shots

`prompt` holds the prompt as data (parts, files, presets); `scoring` runs a model on it.
"""

from tokenscope.lm.fewshot.prompt import (
    AssembledPrompt,
    Example,
    FewShotPrompt,
    PromptPart,
    list_presets,
    load_prompt,
    preset_path,
)
from tokenscope.lm.fewshot.scoring import (
    AnswerScore,
    SweepPoint,
    candidate_shares,
    iter_sweep,
    reorder,
    score_answer,
    score_answers,
    score_candidates,
    sweep,
    sweep_size,
)

__all__ = [
    "AnswerScore",
    "AssembledPrompt",
    "Example",
    "FewShotPrompt",
    "PromptPart",
    "SweepPoint",
    "candidate_shares",
    "iter_sweep",
    "list_presets",
    "load_prompt",
    "preset_path",
    "reorder",
    "score_answer",
    "score_answers",
    "score_candidates",
    "sweep",
    "sweep_size",
]
