"""Settings: default, TOML file, environment and flag, in that order of strength."""

from __future__ import annotations

import dataclasses

import pytest

from streamre.cli.main import build_parser
from streamre.audio import VadConfig
from streamre.config import ConfigError, ServeConfig, load_config
from streamre.graph import GraphSettings
from streamre.settings import leaves
from streamre.voices.clusterer import VoiceSettings


def parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('port = 9001\nmax_sessions = 3\nallowed_origins = ["https://a.example"]\n'
                    '[vad]\nhangover_ms = 400\nmin_utterance_ms = 200\n'
                    '[graph]\nmax_nodes = 7\n')
    env = {"STREAMRE_MAX_SESSIONS": "5", "STREAMRE_VAD_HANGOVER_MS": "450",
           "STREAMRE_GRAPH_MAX_NODES": "8"}
    config = load_config(parse("--config", str(toml), "--vad-hangover-ms", "600"), env)
    assert config.port == 9001  # file
    assert config.max_sessions == 5  # env beats file
    assert config.vad.hangover_ms == 600  # flag beats env
    assert config.vad.min_utterance_ms == 200  # a nested key from the file
    assert config.graph.max_nodes == 8  # env beats file, nested too
    assert config.allowed_origins == ("https://a.example",)
    assert config.vad.pre_roll_ms == ServeConfig().vad.pre_roll_ms  # default


def test_config_file_from_environment_and_serve_table(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('[serve]\nallowed_origins = "https://b, https://c"\n'
                    '[serve.vad]\nmax_utterance_s = 12.5\n')
    config = load_config(parse(), {"STREAMRE_CONFIG": str(toml)})
    assert config.vad.max_utterance_s == 12.5
    assert config.allowed_origins == ("https://b", "https://c")


@pytest.mark.parametrize("argv, env, toml, needle", [
    (["--port", "http"], {}, "", "--port"),
    ([], {"STREAMRE_MAX_BATCH": "0"}, "", "max_batch"),
    ([], {}, "no_such_setting = 1\n", "no_such_setting"),
    ([], {}, "port = [\n", "not valid TOML"),
    ([], {}, 'port = "8000"\n', "port"),
    (["--vad-aggressiveness", "4"], {}, "", "vad: aggressiveness"),
    (["--vocabulary-beam", "0"], {}, "", "vocabulary_beam must be at least 1"),
    ([], {"STREAMRE_VAD_HANGOVER_MS": "soon"}, "", "STREAMRE_VAD_HANGOVER_MS"),
    ([], {}, "[vad]\nno_such_key = 1\n", "vad.no_such_key"),
    ([], {}, "[graph]\nmax_edges = 0\n", "graph: max_nodes and max_edges"),
    ([], {}, "[vad]\nmax_utterance_s = 0.5\nsplit_overlap_ms = 300\n", "max_utterance_s"),
])
def test_bad_settings_are_named(tmp_path, argv, env, toml, needle):
    args = parse(*argv)
    if toml:
        (tmp_path / "bad.toml").write_text(toml)
        args.config = str(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match=needle):
        load_config(args, env)


def test_help_documents_every_setting(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert len(leaves(ServeConfig)) == len(dataclasses.fields(ServeConfig)) - 3 + len(
        dataclasses.fields(VadConfig)) + len(dataclasses.fields(GraphSettings)) + len(
        dataclasses.fields(VoiceSettings))
    for leaf in leaves(ServeConfig):
        assert leaf.flag in text and leaf.env in text and f"TOML key {leaf.toml}" in text
    assert "--vad-hangover-ms" in text and "TOML key graph.max_nodes" in text


def test_the_example_config_in_deploy_loads():
    from streamre import PROJECT_ROOT

    config = load_config(parse("--config", str(PROJECT_ROOT / "deploy" / "streamre.toml")), {})
    assert config.allowed_origins == ("https://meet.example.org",)
    # It lists every setting, so it documents them all.
    text = (PROJECT_ROOT / "deploy" / "streamre.toml").read_text()
    tables = {(): text.split("\n[")[0]}
    tables.update({(t.split("]")[0],): t for t in text.split("\n[")[1:]})
    assert all(f"\n{leaf.path[-1]} = " in tables[leaf.path[:-1]]
               or f"# {leaf.path[-1]} = " in tables[leaf.path[:-1]]
               for leaf in leaves(ServeConfig))


def test_train_flags_are_made_from_train_config():
    from streamre.settings import build
    from streamre.training.config import TrainConfig

    args = build_parser().parse_args([
        "train", "--train", "a.jsonl", "b.jsonl", "--out", "runs/x", "--relations", "Kill,Work_For",
        "--preset", "small", "--encoder-layers-tuned", "0", "--lr", "3e-5", "--resume",
        "--no-progress"])
    cfg = build(TrainConfig, args)
    assert cfg.train == ("a.jsonl", "b.jsonl") and cfg.out == "runs/x" and cfg.dev is None
    assert cfg.relations == ("Kill", "Work_For") and cfg.preset == "small"
    assert (cfg.encoder_layers_tuned, cfg.lr, cfg.resume, cfg.progress) == (0, 3e-5, True, False)
    assert cfg.max_steps == TrainConfig.max_steps  # unset flags keep the declared default
    with pytest.raises(ConfigError, match="--max-steps"):
        build(TrainConfig, build_parser().parse_args(
            ["train", "--train", "a", "--out", "b", "--max-steps", "many"]))
    with pytest.raises(ConfigError, match="--max-steps"):
        build(TrainConfig, build_parser().parse_args(
            ["train", "--train", "a", "--out", "b", "--max-steps", "0"]))


@pytest.mark.parametrize("speech_facts, ensemble, model, through_text", [
    ("text", False, "", True), ("speech", False, "", False), ("speech", True, "m", False),
])
def test_the_aligned_model_is_asked_for_by_speech_facts_alone(
        speech_facts, ensemble, model, through_text):
    from streamre.inference.speech_path import ResearchSettings, SpeechSettings, path_errors

    settings = SpeechSettings(speech_facts=speech_facts)
    assert settings.reads_transcripts is through_text
    assert path_errors(settings, ResearchSettings(model=model, ensemble=ensemble)) == []


@pytest.mark.parametrize("flags", [("--model", "m"), ("--ensemble",)])
def test_naming_the_aligned_model_without_asking_for_it_is_one_clear_error(flags):
    # Never a silent switch of the path; the same words for serve, extract and eval.
    with pytest.raises(ConfigError, match="speech-facts speech"):
        load_config(parse(*flags), {})
    from streamre.inference.speech_path import ResearchSettings, SpeechPath, SpeechSettings

    with pytest.raises(ConfigError, match="speech-facts speech"):
        SpeechPath(SpeechSettings(), ResearchSettings(model="m" if "--model" in flags else "",
                                                      ensemble="--ensemble" in flags))


@pytest.mark.parametrize("windows, message", [
    ("10,5", "ascending"), ("10,40", "within"), ("ten", "whole seconds"),
])
def test_bad_hearing_windows_are_refused_with_the_setting_named(windows, message):
    with pytest.raises(ConfigError, match=f"asr_windows.*{message}"):
        load_config(parse("--asr-windows", windows), {})


def test_the_ensemble_with_a_one_order_model_is_refused_before_the_server_starts(
        tiny_checkpoint, tmp_path):
    from streamre.server.app import StreamServer

    with pytest.raises(ConfigError, match="element orders"):
        StreamServer(ServeConfig(model=str(tiny_checkpoint), ensemble=True, speech_facts="speech",
                                 data_dir=str(tmp_path)))
