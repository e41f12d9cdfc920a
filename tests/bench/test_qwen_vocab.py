"""Qwen's real tokenizer, built from dashscope's `qwen.tiktoken`, writes what tiktoken writes."""

from __future__ import annotations

import unicodedata

import pytest
import tiktoken
from PIL import Image
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from bench.qwen_vocab import (
    QwenVocabError,
    build_real_qwen_tokenizer,
    dashscope_tiktoken_file,
    read_ranks,
    with_real_qwen_tokenizer,
)
from mars_core.agent.expected_score import score_token_ids
from mars_core.models.tiny_tokenizer import QWEN_SPECIAL_TOKENS

# Qwen2 / Qwen2-VL's published special-token ids.
SPECIAL_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647,
    "<|box_start|>": 151648,
    "<|box_end|>": 151649,
    "<|quad_start|>": 151650,
    "<|quad_end|>": 151651,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}

# NFC text only: Qwen2's HF tokenizer normalises to NFC first (as the hub's does), tiktoken
# does not, so decomposed accents are the one place the two may differ by design.
TEXTS = [
    "a bed for this room",
    "Bed 3 (category: BED); color: oak; material: wood; style: modern",
    "Velvet armchair in emerald green with brass legs, 78 cm wide",
    "Scandinavian-style oak dining table, seats 6-8 people.",
    "Outdoor rattan lounger & parasol set — weatherproof!",
    "MID-CENTURY MODERN SIDEBOARD (WALNUT VENEER)",
    "it's the room's colour; they're fine, we'll see, I'd say, you've got it",
    '{"score": 0.7, "rationale": "A modern oak bed suits the bright Scandinavian bedroom."}',
    '{"score": 0.',
    '{"score": 1.0, "rationale": "fits"}',
    '{"score":0.25,"rationale":"too small for the space"}',
    '  {\n    "score": 0.9,\n    "rationale": "matches the palette"\n  }\n',
    "0",
    "0.123456789",
    "1234567890 9876543210",
    "Price: $1,299.99 (was €1.499,00); 3x faster, 42%",
    "2026-11-29T13:02:24Z",
    "café crème, naïve façade, Größe, Ærø, São Paulo",
    "日本語のテキスト、中文字符，한국어 텍스트",
    "emoji 🙂🛋️🪴 and a flag 🇸🇪",
    "Ελληνικά και русский текст",
    "مرحبا بالعالم",
    "tabs\tand\t\tmore tabs",
    "many     spaces    between     words     ",
    "   leading and trailing   ",
    "line one\nline two\r\nline three\n\n\nafter blank lines",
    "\n\n\n",
    " ",
    "",
    "trailing newline\n",
    "x" * 300,
    "a-b_c.d/e\\f|g~h`i^j",
    "<not a special> <|im_start without end",
    "<|im_start|>user\nIs this bed right?<|im_end|>\n<|im_start|>assistant\n",
    "<|vision_start|><|image_pad|><|vision_end|>a bed for this room",
]


@pytest.fixture(scope="session")
def qwen():
    return build_real_qwen_tokenizer()


@pytest.fixture(scope="session")
def ranks() -> dict[bytes, int]:
    return read_ranks(dashscope_tiktoken_file())


@pytest.fixture(scope="session")
def reference(ranks) -> tiktoken.Encoding:
    """tiktoken on the same ranks: how Qwen's own code (Qwen-1's tokenizer) encodes."""
    return tiktoken.Encoding(
        name="qwen",
        pat_str=PRETOKENIZE_REGEX,
        mergeable_ranks=ranks,
        special_tokens={token: len(ranks) + i for i, token in enumerate(QWEN_SPECIAL_TOKENS)},
    )


def test_special_tokens_have_qwens_ids(qwen):
    assert len(qwen) == 151657
    assert {token: qwen.convert_tokens_to_ids(token) for token in SPECIAL_IDS} == SPECIAL_IDS
    assert (qwen.eos_token, qwen.eos_token_id) == ("<|im_end|>", 151645)
    assert (qwen.pad_token, qwen.pad_token_id) == ("<|endoftext|>", 151643)


@pytest.mark.parametrize("text", TEXTS)
def test_ids_equal_tiktoken_and_decode_back(qwen, reference, text):
    ids = qwen.encode(text, add_special_tokens=False)
    assert ids == reference.encode(text, allowed_special="all")
    assert qwen.decode(ids) == text


def test_vocabulary_tokens_encode_as_themselves(qwen, reference, ranks):
    """A sample of the vocabulary (every 50th token that is whole NFC text): HF's BPE from
    the derived merges rebuilds each token as tiktoken's whole-piece lookup does."""
    texts = []
    for token, rank in ranks.items():
        try:
            text = token.decode()
        except UnicodeDecodeError:
            continue
        if rank % 50 == 0 and unicodedata.normalize("NFC", text) == text:
            texts.append(text)
    assert len(texts) > 2000
    assert qwen(texts, add_special_tokens=False)["input_ids"] == reference.encode_ordinary_batch(
        texts
    )


def test_scores_read_digit_by_digit(qwen):
    digits = [qwen.encode(str(d), add_special_tokens=False) for d in range(10)]
    assert all(len(ids) == 1 for ids in digits)

    def encode(text: str) -> list[int]:
        return qwen.encode(text, add_special_tokens=False)

    assert encode('{"score": 0.') == [*encode('{"score": '), *encode("0"), *encode(".")]
    # What the agent's fast score checks on its tokenizer, on this one.
    first, tenths = score_token_ids(qwen)
    assert tenths == [ids[0] for ids in digits] and first == tenths[:2]


def test_chat_template_writes_qwen2vl_prompts(qwen):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "a"}]}]
    text = qwen.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = qwen.encode(text, add_special_tokens=False)
    assert ids[0] == SPECIAL_IDS["<|im_start|>"]
    assert ids.count(SPECIAL_IDS["<|image_pad|>"]) == 1
    assert ids[-3:] == [SPECIAL_IDS["<|im_start|>"], *qwen.encode("assistant\n")]


def test_tiny_processor_with_the_real_tokenizer(qwen, cfg, model_cache):
    """The bench's 2B processor: the tiny image processor, the real vocabulary."""
    from mars_core.models.loading import load_vlm

    tiny = load_vlm(cfg.student, model_cache).processor
    processor = with_real_qwen_tokenizer(tiny, qwen)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "a"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = Image.new("RGB", (120, 90), (30, 90, 200))
    real = processor(text=[text], images=[image], return_tensors="pt")
    small = tiny(text=[text], images=[image], return_tensors="pt")
    assert (real["input_ids"] == SPECIAL_IDS["<|image_pad|>"]).sum() == (
        small["input_ids"] == tiny.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    ).sum()
    assert (real["pixel_values"] == small["pixel_values"]).all()


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (None, "cannot read"),
        (b"not-base64! 0\n", "line 1"),
        (b"YQ== 0\nYg==\n", "line 2"),
        (b"YQ== 0\nYg== 5\n", "0..n-1"),
        (b"YQ== 0\n", "256 bytes"),
    ],
)
def test_bad_rank_files_fail_naming_the_file(tmp_path, content, named):
    path = tmp_path / "qwen.tiktoken"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(QwenVocabError, match=named) as caught:
        read_ranks(path)
    assert str(path) in str(caught.value)


def test_a_token_that_no_lower_merges_build_fails(tmp_path):
    import base64

    lines = [base64.b64encode(bytes([b])) + b" %d" % b for b in range(256)]
    lines.append(base64.b64encode(b"abc") + b" 256")  # neither "ab" nor "bc" is a token
    path = tmp_path / "qwen.tiktoken"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(QwenVocabError, match="rank 256") as caught:
        build_real_qwen_tokenizer(path)
    assert str(path) in str(caught.value)
