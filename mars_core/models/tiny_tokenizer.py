"""A byte-level BPE tokenizer in Qwen2's format, trained offline on a small domain corpus.

Byte-level BPE encodes any text; the corpus only decides which words get single tokens.
Digits stay single tokens (Qwen's pre-tokenizer splits them), so a score like 0.7 is read
digit by digit, exactly as with the real tokenizer.
"""

from __future__ import annotations

import json

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Qwen2Tokenizer

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's chat template (images and videos inline, default system prompt).
QWEN2VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

DOMAIN_WORDS = (
    "room photo product image query score rationale fits does not fit belongs here style colour "
    "color material indoor outdoor furniture decor bedroom bathroom kitchen living room dining "
    "patio pool garden office bed sofa couch chair armchair table desk lamp rug mirror shelf "
    "cabinet dresser nightstand stool bench plant vase clock curtain pillow lounger umbrella "
    "red blue green yellow white black grey gray brown beige orange pink purple wood metal "
    "glass fabric leather plastic rattan marble modern rustic minimalist industrial classic "
    "scandinavian bohemian the a an and or of for in on with by to is are it this that "
    "setting matches clashes with the palette too small too large good poor great fit "
    "You are an interior design assistant. Look at the room and the product. Answer in JSON "
    '{"score": 0.0, "rationale": "one sentence"} 0 1 2 3 4 5 6 7 8 9 . , : ; " { } ( ) - '
)


def train_bpe(vocab_size: int, corpus: list[str] | None = None) -> tuple[dict[str, int], list]:
    """Train a byte-level BPE with Qwen's pre-tokenizer; return (vocab, merges)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_qwen_pretokenize_regex()), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    lines = corpus or [DOMAIN_WORDS] * 8 + DOMAIN_WORDS.split()
    tokenizer.train_from_iterator(lines, trainer=trainer)
    bpe = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in bpe["merges"]]
    return bpe["vocab"], merges


def _qwen_pretokenize_regex() -> str:
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return PRETOKENIZE_REGEX


def build_qwen_tokenizer(vocab_size: int) -> Qwen2Tokenizer:
    """A Qwen2Tokenizer with Qwen's special tokens and chat template, trained offline."""
    return qwen_tokenizer(*train_bpe(vocab_size))


def qwen_tokenizer(vocab: dict[str, int], merges: list) -> Qwen2Tokenizer:
    """Wrap a byte-level BPE (vocab in byte-level unicode form, merges in rank order) as
    Qwen2's tokenizer: Qwen's special tokens, eos `<|im_end|>`, pad `<|endoftext|>` and the
    Qwen2-VL chat template. Special tokens already in `vocab` keep their ids; the others are
    added after it."""
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = QWEN2VL_CHAT_TEMPLATE
    return tokenizer
