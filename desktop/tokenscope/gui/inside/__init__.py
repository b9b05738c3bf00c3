"""The Inside tab: the logit lens, attention and surprisal."""
