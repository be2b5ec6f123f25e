"""Parsing of a study's mitigation variants."""

import pytest

from odyssey.errors import ConfigError
from odyssey.study.variants import parse_variant, run_name, study_variants


def test_variants_parse_methods_combinations_and_learning_rates():
    assert parse_variant("replay") == parse_variant(" replay ")
    v = parse_variant("replay+l2sp")
    assert v.methods == ("replay", "l2sp") and v.lr is None and v.name == "replay+l2sp"
    v = parse_variant("lr=1e-4")
    assert v.methods == () and v.lr == pytest.approx(1e-4) and v.name == "lr=0.0001"
    v = parse_variant("lora+lr=2e-3")
    assert v.methods == ("lora",) and v.lr == pytest.approx(2e-3) and v.name == "lora+lr=0.002"
    assert run_name("wiki", v) == "wiki@lora+lr=0.002" and run_name("wiki", None) == "wiki"


@pytest.mark.parametrize("bad", ["", "nonsense", "lr=0", "lr=x", "lr=1e-3+lr=1e-4", "lora+l2sp"])
def test_bad_variants_are_config_errors(bad):
    with pytest.raises(ConfigError):
        parse_variant(bad)


def test_a_variant_listed_twice_is_refused():
    with pytest.raises(ConfigError, match="twice"):
        study_variants(["replay", " replay"])
