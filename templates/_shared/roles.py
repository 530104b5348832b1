"""Chat roles, speaker-name aliases and end-of-turn markers, as the templates train and the doctor checks."""

#: Roles a chat template is expected to know.
CHAT_ROLES = frozenset({"system", "user", "assistant", "tool"})

#: Speaker names -> chat roles (ShareGPT `from` values and `messages` roles alike).
ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                "bot": "assistant", "system": "system", "tool": "tool"}

#: Chat templates' end-of-turn markers (ChatML, Llama 3, Gemma, Phi, GPT-2 style, Llama 2, Llama 3 tool calls,
#: Llama 3 base, Gemma 3n, gpt-oss): the token that closes an assistant turn and must be trained.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>", "<|eom_id|>",
                      "<|end_of_text|>", "<turn|>", "<|return|>", "<end_of_utterance>")  # the last: SmolVLM

#: Label values the KTO template reads as true.
TRUE_LABELS = frozenset({"true", "1", "1.0", "yes", "y", "good", "desirable", "positive", "pos", "chosen", "accepted", "up"})

#: Label values the KTO template reads as false.
FALSE_LABELS = frozenset({"false", "0", "0.0", "no", "n", "bad", "undesirable", "negative", "neg", "rejected", "down"})
