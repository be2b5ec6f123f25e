import pytest

from odyssey.config import parse_override, resolve
from odyssey.errors import ConfigError
from odyssey.study.config import StudyConfig


def test_override_values_are_parsed_as_yaml():
    assert parse_override("a.b=3e-4") == (["a", "b"], 3e-4)
    assert parse_override("flag=false") == (["flag"], False)
    assert parse_override("names=[x, y]") == (["names"], ["x", "y"])


def test_partial_section_keeps_its_factory_defaults():
    cfg = resolve(StudyConfig, overrides=["recipe.optim.weight_decay=0.1"])
    assert cfg.recipe.optim.weight_decay == 0.1
    assert cfg.recipe.optim.lr == [2e-4, 2e-3]  # the recipe's default rates, not OptimConfig's bare 1e-4


def test_precedence_yaml_then_values_then_overrides(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("name: from-yaml\nout: yaml-out\nrecipe:\n  optim:\n    lr: 0.5\n")
    cfg = resolve(StudyConfig, y, ["recipe.optim.lr=0.25"], values={"out": "cli-out", "name": None})
    assert (cfg.name, cfg.out, cfg.recipe.optim.lr) == ("from-yaml", "cli-out", 0.25)
    assert resolve(StudyConfig, y, ["recipe.train.precision=no"]).recipe.train.precision == "no"


def test_every_problem_reported_once():
    with pytest.raises(ConfigError) as e:
        resolve(StudyConfig, overrides=["recipe.optim.lr=-1", "recipe.train.batch_size=0", "bogus=1"])
    msg = str(e.value)
    assert "recipe.optim.lr" in msg and "recipe.train.batch_size" in msg and "bogus" in msg
