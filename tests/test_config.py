import pytest

from neurocredit.config import load_config, models_dir
from neurocredit.errors import NeurocreditError


@pytest.mark.parametrize("path", sorted(models_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_every_ready_config_is_valid(path):
    config = load_config(path)
    assert config.name == path.stem


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


BASE = """name: t
data: {name: digits}
network: {hidden: [8], neuron: {kind: rate, activation: tanh}}
rule: {name: dfa}
training: {epochs: 1}
"""


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, BASE.replace("epochs: 1", "epochs: 1, epochz: 3"))
    with pytest.raises(NeurocreditError) as error:
        load_config(path)
    assert str(path) in str(error.value) and "unknown key 'epochz'" in str(error.value)


def test_wrong_type_names_the_field(tmp_path):
    path = write(tmp_path, BASE.replace("epochs: 1", "epochs: many"))
    with pytest.raises(NeurocreditError, match=r"cfg.yaml: training.epochs must be an integer, got 'many'"):
        load_config(path)


def test_unknown_rule_option_names_the_option(tmp_path):
    path = write(tmp_path, BASE.replace("{name: dfa}", "{name: dfa, feedback_sed: 1}"))
    with pytest.raises(NeurocreditError, match=r"cfg.yaml: rule: unknown key 'feedback_sed'"):
        load_config(path)


def test_bad_choices(tmp_path):
    with pytest.raises(NeurocreditError, match="unknown rule 'hebb'"):
        load_config(write(tmp_path, BASE.replace("{name: dfa}", "{name: hebb}")))
    with pytest.raises(NeurocreditError, match="training.optimizer must be adam or sgd"):
        load_config(write(tmp_path, BASE.replace("epochs: 1", "epochs: 1, optimizer: lbfgs")))
    with pytest.raises(NeurocreditError, match="activation 'softsign'"):
        load_config(write(tmp_path, BASE.replace("tanh", "softsign")))


def test_malformed_yaml_gives_the_position(tmp_path):
    with pytest.raises(NeurocreditError, match=r"malformed YAML at line \d+, column \d+"):
        load_config(write(tmp_path, "name: [unclosed\nrule: {"))


def test_missing_config_file(tmp_path):
    with pytest.raises(NeurocreditError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
