"""Hugging Face data sets (data.source 'hf') through the same presets, rejects and counts.

No network here: the fixtures are folders written by `save_to_disk`, which data.hf.path reads
exactly as a user's local copy; a hub name goes to `datasets.load_dataset` the same way.
"""

import pytest

from tadistill.config import DataConfig
from tadistill.corpus import CorpusError, read_corpus

from . import fixtures as fx

datasets = pytest.importorskip("datasets")


def _config(path, preset, splits, **extra):
    return DataConfig.model_validate({"source": "hf", "preset": preset,
                                      "hf": {"path": str(path), "splits": splits}, **extra})


def test_a_dataset_dict_with_our_splits_mapped_to_theirs(ray_local, tmp_path):
    train = fx.CSQA_HUB + [{**fx.CSQA_HUB[0], "id": "second", "answerKey": "C"}]
    unlabelled = [{**fx.CSQA_HUB[0], "id": "no-answer", "answerKey": ""}]  # CommonsenseQA's test split
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(train),
        "validation": datasets.Dataset.from_list([{**fx.CSQA_HUB[0], "id": "dev-1", "answerKey": "B"}]),
        "test": datasets.Dataset.from_list(unlabelled),
    }).save_to_disk(tmp_path / "csqa")
    corpus = read_corpus(_config(tmp_path / "csqa", "csqa", {"train": "train", "test": "validation"}))
    rows = corpus.rows.set_index("id")
    assert rows.loc["second", "gold"] == "c" and rows.loc["dev-1", "split"] == "test"
    assert list(rows.loc["dev-1", "options"])[:2] == ["ignore", "enforce"]
    assert corpus.counts == {"train": {"rows_in": 2, "kept": 2, "rejected": 0},
                             "test": {"rows_in": 1, "kept": 1, "rejected": 0}}
    assert rows.loc["dev-1", "source_file"].endswith("[validation]")

    # Their test split has no answers: every row is rejected with the reason and the place.
    labelled_test = read_corpus(_config(tmp_path / "csqa", "csqa", {"train": "train", "test": "test"},
                                        max_reject_share=1.0))
    assert list(labelled_test.rejects["reason"]) == ["test row without a gold answer"]
    assert labelled_test.rejects.loc[0, "source_file"].endswith("[test]") and labelled_test.rejects.loc[0, "row"] == 1


def test_one_dataset_on_disk_with_a_held_out_test_share(ray_local, tmp_path):
    records = [{**r, "label": int(r["label"])} for r in fx.ANLI_INDEXED]  # facebook/anli: integer labels
    datasets.Dataset.from_list(records).save_to_disk(tmp_path / "anli")
    corpus = read_corpus(_config(tmp_path / "anli", "anli", {"train": "train"}, test_share=0.5))
    assert set(corpus.rows["gold"]) <= {"entailment", "neutral", "contradiction"}
    assert len(corpus.rows) == 3 and set(corpus.rows["split"]) <= {"train", "test"}


def test_a_split_they_do_not_have_is_named_with_the_ones_they_do(ray_local, tmp_path):
    datasets.DatasetDict({"train": datasets.Dataset.from_list(fx.ARC_HUB)}).save_to_disk(tmp_path / "arc")
    with pytest.raises(CorpusError, match=r"no split 'test' for our 'test' \(data.hf.splits\); it has train"):
        read_corpus(_config(tmp_path / "arc", "arc", {"train": "train", "test": "test"}))


def test_the_config_names_what_is_missing():
    with pytest.raises(ValueError, match="data.hf.path is empty"):
        DataConfig.model_validate({"source": "hf", "preset": "gsm8k"})
    with pytest.raises(ValueError, match="data.pool_split 'train' is not a key of data.hf.splits"):
        DataConfig.model_validate({"source": "hf", "preset": "gsm8k", "hf": {"path": "gsm8k", "splits": {"x": "y"}}})
