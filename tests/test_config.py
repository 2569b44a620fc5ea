"""Settings: default, TOML file, environment and flag, in that order of strength."""

from __future__ import annotations

import dataclasses

import pytest

from streamre.cli.main import build_parser
from streamre.config import ConfigError, ServeConfig, load_config


def parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('port = 9001\nmax_sessions = 3\nhangover_ms = 400\n'
                    'allowed_origins = ["https://a.example"]\n')
    env = {"STREAMRE_MAX_SESSIONS": "5", "STREAMRE_HANGOVER_MS": "450"}
    config = load_config(parse("--config", str(toml), "--hangover-ms", "600"), env)
    assert config.port == 9001  # file
    assert config.max_sessions == 5  # env beats file
    assert config.hangover_ms == 600  # flag beats env
    assert config.allowed_origins == ("https://a.example",)
    assert config.pre_roll_ms == ServeConfig().pre_roll_ms  # default


def test_config_file_from_environment_and_serve_table(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('[serve]\nmax_utterance_s = 12.5\nallowed_origins = "https://b, https://c"\n')
    config = load_config(parse(), {"STREAMRE_CONFIG": str(toml)})
    assert config.max_utterance_s == 12.5
    assert config.allowed_origins == ("https://b", "https://c")


@pytest.mark.parametrize("argv, env, toml, needle", [
    (["--port", "http"], {}, "", "--port"),
    ([], {"STREAMRE_MAX_BATCH": "0"}, "", "max_batch"),
    ([], {}, "no_such_setting = 1\n", "no_such_setting"),
    ([], {}, "port = [\n", "not valid TOML"),
    ([], {}, 'port = "8000"\n', "port"),
    (["--vad-aggressiveness", "4"], {}, "", "vad_aggressiveness"),
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
    for f in dataclasses.fields(ServeConfig):
        assert "--" + f.name.replace("_", "-") in text
        assert "STREAMRE_" + f.name.upper() in text
        assert f"TOML key {f.name}" in text


def test_the_example_config_in_server_loads():
    from streamre import PROJECT_ROOT

    config = load_config(parse("--config", str(PROJECT_ROOT / "deploy" / "streamre.toml")), {})
    assert config.allowed_origins == ("https://meet.example.org",)
    # It lists every setting, so it documents them all.
    text = (PROJECT_ROOT / "deploy" / "streamre.toml").read_text()
    assert all(f"\n{f.name} = " in text or f"# {f.name} = " in text
               for f in dataclasses.fields(ServeConfig))
