from pathlib import Path

import pytest

from tadistill.config import METHODS, Config, ConfigError, describe_options, load_config


def test_defaults_validate_and_every_option_is_documented():
    config = load_config()
    assert isinstance(config, Config)
    options = describe_options()
    assert len(options) > 40
    undocumented = [key for key, _, description in options if not description]
    assert undocumented == []


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("budget:\n  requests: 123\ntrain:\n  epochs: 3\n")
    config = load_config(path, ["train.epochs=5", "teacher.synthetic.error_rate=0.4"])
    assert config.budget.requests == 123
    assert config.train.epochs == 5
    assert config.teacher.synthetic.error_rate == 0.4


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epocs: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"invalid config: train.epocs (file {path}): unknown key; did you mean train.epochs?"


def test_an_unknown_key_typed_on_the_command_line_is_reported_there_not_against_the_file():
    demo = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(demo, ["budget.requets=5"])
    assert str(caught.value) == ("invalid config: budget.requets (command line: budget.requets=5): unknown key; "
                                 "did you mean budget.requests?")


def test_each_unknown_key_gets_its_own_line_its_origin_and_the_nearest_valid_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("budget:\n  prices:\n    gpt-4o: {promt: 1, completion: 2}\ntrain: {epochs: 2}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["train.requests=3", "trian.epochs=3", "zzz=1", "train.epochs=4"])
    lines = str(caught.value).splitlines()
    assert lines[0] == f"invalid config ({path}):"  # 'prompt: Field required' has no single origin
    assert lines[1:] == [
        "  budget.prices.gpt-4o.prompt: Field required",
        f"  budget.prices.gpt-4o.promt (file {path}): unknown key; did you mean budget.prices.gpt-4o.prompt?",
        "  train.requests (command line: train.requests=3): unknown key; did you mean budget.requests?",
        "  trian (command line: trian.epochs=3): unknown key; did you mean train?",
        "  zzz (command line: zzz=1): unknown key",
    ]
    # A key under a field whose keys are the user's own (a model's price) is no unknown key.
    prices = load_config(None, ["budget.prices.gpt-4o.prompt=1", "budget.prices.gpt-4o.completion=2"]).budget.prices
    assert prices["gpt-4o"].completion == 2


def test_bad_value_is_named():
    with pytest.raises(ConfigError, match=r"budget\.warmup_share"):
        load_config(None, ["budget.warmup_share=1.5"])
    with pytest.raises(ConfigError, match=r"method"):
        load_config(None, ["method=magic"])


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="base_url is required"):
        load_config(None, ["teacher.source=openai"])
    with pytest.raises(ConfigError, match="min_steps"):
        load_config(None, ["data.synthetic.min_steps=5", "data.synthetic.max_steps=3"])
    with pytest.raises(ConfigError, match="run_dir.*is a URI.*train.storage_path"):
        load_config(None, ["run_dir=gs://bucket/runs/a"])
    with pytest.raises(ConfigError, match="inference.*launcher 'local' runs the transformers backend"):
        load_config(None, ["inference.launcher=local", "inference.backend=vllm"])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["budget.requests"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("method", METHODS)
def test_method_presets(method):
    from tadistill.methods import METHODS as REGISTRY

    config = load_config(None, [f"method={method}"])
    entry = REGISTRY[method]
    assert config.stages == entry.stages
    assert config.selects == (method not in ("base", "none", "oracle", "ta_teacher_only"))
    for key, value in entry.preset.items():
        node = config
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key
    if method in ("random", "random_none"):
        assert config.selection.strategy == "random" and config.trust.mode == "none"
    if method == "sc_none":
        assert config.signals.w_ta == 0 and config.trust.mode == "none"
    if method == "full":
        assert config.trust.mode == "weight" and config.signals.w_sc == config.signals.w_ta == 1
    if method == "full_one_stage":
        assert config.budget.warmup_share == 0 and config.train.final_init == "base"


def test_the_factorial_is_every_selection_with_every_trust_mode():
    from tadistill.methods import FACTORIAL

    assert len(FACTORIAL) == 12
    for name in FACTORIAL:
        config = load_config(None, [f"method={name}"])
        selection, trust = name.rsplit("_", 1)
        assert config.trust.mode == trust
        assert (config.selection.strategy == "random") == (selection == "random")


def test_fair_schedule_gives_every_method_the_same_steps():
    steps = {m: load_config(None, [f"method={m}", "budget.requests=300", "train.epochs=6",
                                   "train.global_batch_size=16", "train.micro_batch_size=8"]).final_steps()
             for m in ("none", "oracle", "random", "full", "sc_filter", "ta_teacher_only")}
    assert set(steps.values()) == {113}  # ceil(6 x 300 / 16)
    assert load_config(None, ["train.steps=50"]).final_steps() == 50


def test_fair_schedule_refuses_a_continuation_from_the_previous_round():
    with pytest.raises(ConfigError, match="train.schedule"):
        load_config(None, ["train.final_init=previous_round"])
    config = load_config(None, ["train.schedule=epochs", "train.final_init=previous_round"])
    assert config.train.final_init == "previous_round"


def test_no_warmup_needs_the_final_student_to_start_from_the_base_model():
    with pytest.raises(ConfigError, match="train.final_init"):
        load_config(None, ["budget.warmup_share=0", "train.schedule=epochs", "train.final_init=previous_round"])


def test_calibrated_trust_on_a_users_data_needs_reference_outputs(tmp_path):
    data = ["data.source=files", f"data.files={{train: [{tmp_path}/t.jsonl], test: [{tmp_path}/t.jsonl]}}",
            "data.preset=gsm8k"]
    with pytest.raises(ConfigError, match="trust.calibration_files"):
        load_config(None, [*data, "method=full", "trust.scale=calibrated"])
    assert load_config(None, [*data, "method=full"]).trust_scale == "rank"  # auto: nothing to calibrate on
    with_files = load_config(None, [*data, "method=full", "trust.calibration_files=[right.jsonl]"])
    assert with_files.trust_scale == "calibrated" and with_files.calibrates_trust
    assert load_config(None, ["method=full"]).trust_scale == "calibrated"  # the synthetic task has gold solutions
    assert load_config(None, [*data, "method=none"]).trust.mode == "none"  # no trust, nothing to calibrate


def test_the_final_pick_on_the_probe_needs_a_probe_and_chooses_the_share_itself(tmp_path):
    """train.final_pick 'best_on_probe' reads the run's outputs known to be right (so the run scores
    them and its final training reads them), refuses a run without them, and a share set beside it;
    a config written before the key existed loads, with today's default."""
    import json

    from tadistill.artifacts import CALIBRATION
    from tadistill.plan import plan

    picks = load_config(None, ["method=none", "train.final_pick=best_on_probe"])
    assert picks.checks_start_share and picks.calibrates_trust
    assert CALIBRATION in next(s for s in plan(picks) if s.name == "final.train").reads
    data = ["data.source=files", f"data.files={{train: [{tmp_path}/t.jsonl], test: [{tmp_path}/t.jsonl]}}",
            "data.preset=gsm8k"]
    with pytest.raises(ConfigError, match="train.final_pick 'best_on_probe'.*trust.calibration_files"):
        load_config(None, [*data, "method=none", "train.final_pick=best_on_probe"])
    with pytest.raises(ConfigError, match="train.start_weight_share"):
        load_config(None, ["train.final_pick=best_on_probe", "train.start_weight_share=0.5"])
    assert not load_config(None, ["method=base", "train.final_pick=best_on_probe"]).checks_start_share  # trains none
    written = json.loads((Path(__file__).parents[2] / "bench/plan/demo_yaml_runs/budget60/config.json").read_text())
    assert "final_pick" not in written["train"]
    assert Config.model_validate(written).train.final_pick == "auto"


def test_by_default_the_final_student_is_checked_against_its_start_wherever_a_probe_exists(tmp_path):
    """train.final_pick 'auto' (the default) picks on the probe where the run has one and no fixed
    averaging share, for every method that trains; elsewhere it keeps the last weights, and never
    refuses a config."""
    for method in ("none", "full", "random", "auto"):
        assert load_config(None, [f"method={method}"]).picks_final_on_probe
    assert not load_config(None, ["method=base"]).picks_final_on_probe
    files = ["data.source=files", f"data.files={{train: [{tmp_path}/t.jsonl], test: [{tmp_path}/t.jsonl]}}",
             "data.preset=gsm8k"]
    without_probe = load_config(None, [*files, "method=none"])
    assert not without_probe.picks_final_on_probe and not without_probe.checks_start_share
    calibration = tmp_path / "calibration.jsonl"
    assert load_config(None, [*files, "method=none", f"trust.calibration_files=[{calibration}]"]).picks_final_on_probe
    shared = load_config(None, ["method=none", "train.start_weight_share=0.5"])
    assert not shared.picks_final_on_probe and not shared.checks_start_share
    assert not load_config(None, ["method=none", "train.final_pick=last"]).picks_final_on_probe


def test_a_learning_trust_signal_needs_a_labelled_split_of_its_own_paid_from_the_budget():
    learns = ["method=full", "trust.signal=combined", "budget.requests=300"]
    with pytest.raises(ConfigError, match="trust.calibration_split"):
        load_config(None, learns)
    for split, key in (("train", "data.pool_split"), ("test", "data.test_split")):
        with pytest.raises(ConfigError, match=key):
            load_config(None, [*learns, f"trust.calibration_split={split}"])
    with pytest.raises(ConfigError, match="budget.requests"):
        load_config(None, [*learns, "trust.calibration_split=validation", "trust.calibration_questions=300"])
    config = load_config(None, [*learns, "trust.calibration_split=validation", "trust.calibration_questions=60"])
    # The calibration purchase comes out of the budget: the pool gets the rest, compute stays the budget's.
    assert config.learns_trust and config.calibration_requests() == 60 and config.pool_requests() == 240
    assert config.warmup_requests() == 72 and config.round_targets() == [168]
    assert config.trust_scale == "calibrated"
    # It places itself on its labels: only the final pick's probe (the default's) has the run score references.
    assert config.calibrates_trust and not config.model_copy(
        update={"train": config.train.model_copy(update={"final_pick": "last"})}).calibrates_trust
    assert config.final_steps() == load_config(None, ["method=full", "budget.requests=300"]).final_steps()
    # A method that does not trust the teacher buys no calibration, whatever the signal.
    plain = load_config(None, ["method=none", "trust.signal=combined", "budget.requests=300"])
    assert not plain.learns_trust and plain.warmup_requests() == 300


def test_synthetic_test_split_must_exist():
    with pytest.raises(ConfigError, match="validation_size"):
        load_config(None, ["data.test_split=validation"])
    assert load_config(None, ["data.test_split=validation", "data.synthetic.validation_size=10"])


def test_a_key_that_contradicts_the_method_is_an_error_naming_the_method_that_has_it():
    # Methods mean what they say: `none` with TA trust weighting is not plain fine-tuning.
    with pytest.raises(ConfigError, match="method 'none' sets trust.mode 'none' but the config sets it to 'weight': "
                                          "method 'ta_teacher_only' is"):
        load_config(None, ["method=none", "trust.mode=weight"])
    with pytest.raises(ConfigError, match="method 'both_none' is 'full' with trust.mode 'none'"):
        load_config(None, ["method=full", "trust.mode=none"])
    with pytest.raises(ConfigError, match="method 'learnable_weight' is 'full' with selection.strategy 'learnable'"):
        load_config(None, ["method=full", "selection.strategy=learnable"])
    with pytest.raises(ConfigError, match="no method has budget.warmup_share 0.3 with the rest of 'full_one_stage'"):
        load_config(None, ["method=full_one_stage", "budget.warmup_share=0.3"])
    # Saying what the method says anyway is fine, and so is a key the method does not set.
    assert load_config(None, ["method=sc_none", "trust.mode=none", "signals.w_ta=0.0"]).trust.mode == "none"
    assert load_config(None, ["method=none", "signals.w_sc=0.5"]).signals.w_sc == 0.5


def test_every_method_over_every_committed_config():
    """The example configs set no key a method controls: each loads with every method."""
    from tadistill.config import METHODS

    repo = Path(__file__).resolve().parents[2]
    files = sorted([*repo.glob("configs/**/*.yaml"), *repo.glob("cluster/**/*.yaml"), *repo.glob("jobs/**/*.yaml")])
    assert len(files) >= 10
    for path in files:
        for name in METHODS:
            try:
                load_config(path, [f"method={name}"])
            except ConfigError as exc:
                assert "sets" not in str(exc) or "but the config sets it" not in str(exc), f"{path.name}: {exc}"


def test_section_hash_tracks_only_named_keys():
    a = load_config(None, ["train.epochs=3"])
    b = load_config(None, ["train.epochs=4"])
    assert a.section_hash("data") == b.section_hash("data")
    assert a.section_hash("train") != b.section_hash("train")


# -- property-based: whatever a user types, a Config or a ConfigError -------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

OPTION_KEYS = [key for key, _, _ in describe_options()]
AWKWARD_VALUES = st.sampled_from([
    "", "null", "~", "-1", "0", "1e400", ".inf", ".nan", "[1", "{a: 1}", "a: b: c", "[1, 2]", "{}", "yes",
    "!!python/object/apply:os.system ['touch /tmp/pwned']", "!!python/name:os.system", "*alias", "&anchor x",
    "@", "`", "%", "'unterminated", '"unterminated', "- a\n- b", "\t", "x" * 300, "🙂", "\x00",
    "ddp", "deepspeed", "full", "none", "s3://bucket/run", "/tmp/x",
])
VALUES = st.one_of(AWKWARD_VALUES, st.text(max_size=12), st.integers(-10**6, 10**6).map(str),
                   st.floats(allow_nan=True).map(str))
KEYS = st.one_of(st.sampled_from(OPTION_KEYS), st.sampled_from(["method", "budget", "train.lora", "a..b", ".", "="]),
                 st.text(max_size=12))
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_any_overrides_give_a_config_or_a_config_error(pairs):
    try:
        config = load_config(None, [f"{key}={value}" for key, value in pairs])
    except ConfigError as exc:
        assert str(exc).strip()
    else:
        assert isinstance(config, Config)


@PROPERTY
@given(st.one_of(st.text(max_size=200), st.lists(st.tuples(KEYS, VALUES), max_size=4).map(
    lambda pairs: "\n".join(f"{key}: {value}" for key, value in pairs))))
def test_any_yaml_file_gives_a_config_or_a_config_error_naming_the_file(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    path.write_text(text, errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc) or "override" in str(exc)


def test_a_check_over_several_keys_says_what_is_wrong_without_dumping_the_section():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["method=none", "budget.rounds=2"])
    message = str(caught.value)
    assert "budget.rounds 2: method 'none' buys once, at random, and has no rounds" in message
    assert "{" not in message and "Value error" not in message
    with pytest.raises(ConfigError, match=r"budget.requests \(command line: budget.requests=0\): Input should be "
                                          r"greater than or equal to 1 \(got 0\)"):
        load_config(None, ["budget.requests=0"])


# -- renamed options (config/renamed.py): the old names load, warn once, and never mix with the new ----

@pytest.fixture
def renames_said(monkeypatch, caplog):
    """The deprecation warnings config loading gives (logger tadistill.config), none said before."""
    from tadistill.config import renamed

    monkeypatch.setattr(renamed, "_SAID", set())
    caplog.set_level("WARNING", logger="tadistill.config")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "tadistill.config"]


def test_an_old_key_in_a_file_loads_as_the_new_one_with_one_warning_naming_it(tmp_path, renames_said):
    path = tmp_path / "old.yaml"
    path.write_text("train:\n  schedule: epochs\n  stage2_data: selected\n")
    config = load_config(path)
    assert config.train.final_data == "selected"
    assert renames_said() == ["config key train.stage2_data is deprecated: it is now train.final_data "
                              "(the old name still works, for now)"]
    load_config(path)  # once: a second load says nothing more
    assert len(renames_said()) == 1
    assert "stage2_data" not in config.model_dump_json()  # a run's saved config holds the new name only


def test_an_old_key_with_an_old_value_on_the_command_line_gives_one_warning_naming_both_new_names(renames_said):
    config = load_config(None, ["train.schedule=epochs", "train.stage2_init=stage1"])
    assert config.train.final_init == "previous_round"
    [said] = renames_said()
    assert "train.final_init" in said and "'previous_round'" in said


def test_an_old_value_loads_as_the_new_one_with_one_warning_and_meets_the_method_preset(renames_said):
    config = load_config(None, ["selection.strategy=signals"])
    assert config.selection.strategy == "unsure_first"
    # The method's preset sets the new name: the old one given beside it agrees with it.
    assert load_config(None, ["method=sc_none", "selection.strategy=signals"]).selection.strategy == "unsure_first"
    assert renames_said() == ["selection.strategy 'signals' is deprecated: it is now selection.strategy "
                              "'unsure_first' (the old value still works, for now)"]


def test_a_section_built_on_its_own_takes_the_old_names_too(renames_said):
    from tadistill.config.signals import SelectionConfig
    from tadistill.config.train import TrainConfig

    assert SelectionConfig(strategy="signals").strategy == "unsure_first"
    assert TrainConfig(stage2_init="stage1", schedule="epochs").final_init == "previous_round"
    assert Config(train={"stage2_data": "all"}).train.final_data == "all"
    assert len(renames_said()) == 3


def test_an_old_and_a_new_name_together_are_an_error_naming_both(tmp_path, renames_said):
    with pytest.raises(ConfigError, match=r"train.stage2_init and train.final_init are both set: "
                                          r"train.stage2_init is the old name of train.final_init"):
        load_config(None, ["train.stage2_init=base", "train.final_init=base"])
    path = tmp_path / "old.yaml"
    path.write_text("train:\n  stage2_data: all\n")
    with pytest.raises(ConfigError, match="train.stage2_data and train.final_data are both set"):
        load_config(path, ["train.final_data=all"])
